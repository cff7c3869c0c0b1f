package notify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/settle-dev/settle/pipeline"
)

// Slack's limits on block text, in characters.
const (
	maxHeader  = 150
	maxSection = 3000
	maxField   = 2000
)

// Message is a rendered Slack message: Block Kit blocks, and the plain-text
// fallback that notifications and screen readers show.
type Message struct {
	Text   string
	blocks []slack.Block
}

// MarshalJSON returns the message as Slack receives it:
// {"text": …, "blocks": […]}, with <, > and & left as they are.
func (m Message) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(struct {
		Text   string        `json:"text"`
		Blocks []slack.Block `json:"blocks"`
	}{m.Text, m.blocks})
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), err
}

// Render returns the first message of a problem or a storm, as it is posted
// and as it is later rewritten (repeats counted, resolution shown).
func Render(n Notice) Message {
	switch {
	case n.Storm != nil:
		return renderStorm(*n.Storm)
	case n.Alert.Kind == pipeline.AlertKindDailySummary:
		return renderSummary(n)
	}
	return renderProblem(n)
}

// RenderReply returns a follow-up: a repeat of a problem, its resolution, or
// a storm that goes on. It is short and stands on its own, since webhook
// mode cannot thread it under the first message.
func RenderReply(n Notice) Message {
	switch {
	case n.Storm != nil:
		return renderStormReply(*n.Storm)
	case n.Alert.Kind == pipeline.AlertKindResolved:
		return renderResolvedReply(n)
	}
	return renderRepeat(n)
}

// builder collects blocks and the fallback text side by side.
type builder struct {
	blocks []slack.Block
	text   []string
}

// header adds the headline: plain text in its block, escaped in the
// fallback (which Slack reads as mrkdwn).
func (b *builder) header(s string) {
	s = cut(s, maxHeader)
	b.blocks = append(b.blocks, slack.NewHeaderBlock(slack.NewTextBlockObject(slack.PlainTextType, s, true, false)))
	b.text = append(b.text, escape(s))
}

// section adds a block of mrkdwn text under a bold label; text is already
// escaped. The fallback gets "label: text".
func (b *builder) section(label, text string) {
	if text == "" {
		return
	}
	md := text
	if label != "" {
		md = "*" + label + "*\n" + text
		text = label + ": " + text
	}
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(md, maxSection)), nil, nil))
	b.text = append(b.text, text)
}

// fields adds label/value pairs side by side; values are already escaped.
func (b *builder) fields(pairs [][2]string) {
	var objs []*slack.TextBlockObject
	var line []string
	for _, p := range pairs {
		if p[1] == "" || len(objs) == 10 {
			continue
		}
		objs = append(objs, mrkdwn(cut("*"+p[0]+"*\n"+p[1], maxField)))
		line = append(line, p[0]+": "+p[1])
	}
	if len(objs) == 0 {
		return
	}
	b.blocks = append(b.blocks, slack.NewSectionBlock(nil, objs, nil))
	b.text = append(b.text, strings.Join(line, " · "))
}

// command adds the fix: the exact command in a code block, ready to copy,
// and what to do around it, if anything.
func (b *builder) command(hint, cmd string) {
	if cmd == "" {
		return
	}
	md, text := "*Fix*\n```"+escape(cmd)+"```", "Fix: "+escape(cmd)
	if hint != "" {
		md += "\n" + escape(hint)
		text += "\n" + escape(hint)
	}
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(md, maxSection)), nil, nil))
	b.text = append(b.text, text)
}

// context adds a line of small print; md is for the block, plain for the
// fallback.
func (b *builder) context(md, plain string) {
	b.blocks = append(b.blocks, contextBlock{Type: slack.MBTContext, Elements: []*slack.TextBlockObject{mrkdwn(cut(md, maxSection))}})
	b.text = append(b.text, plain)
}

// contextBlock is Block Kit's context block with text elements only. (slack-go's
// own escapes < and > in its JSON, which is valid but unreadable in docs.)
type contextBlock struct {
	Type     slack.MessageBlockType   `json:"type"`
	Elements []*slack.TextBlockObject `json:"elements"`
}

func (c contextBlock) BlockType() slack.MessageBlockType { return c.Type }
func (c contextBlock) ID() string                        { return "" }

func (b *builder) message() Message {
	return Message{Text: strings.Join(b.text, "\n"), blocks: b.blocks}
}

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

// emoji marks a severity.
func emoji(severity pipeline.Severity) string {
	switch severity {
	case pipeline.SeverityCritical:
		return ":red_circle:"
	case pipeline.SeverityWarning:
		return ":warning:"
	}
	return ":information_source:"
}

func renderProblem(n Notice) Message {
	a := n.Alert
	var b builder
	head := emoji(a.Severity) + " " + title(a)
	if n.Resolved != nil {
		head = ":white_check_mark: Resolved: " + title(a)
	}
	b.header(head)
	b.fields(facts(a))
	b.section(whyLabel(a), escape(why(a)))
	b.section("What settle already tried", escape(tried(a)))
	if n.Resolved == nil {
		b.command(fixHint(a), a.Action)
		b.actions(ActionsBlockID, strconv.FormatInt(a.SettlementID, 10), n.Actions, nil)
	}
	b.context(problemLine(n, true), problemLine(n, false))
	if r := n.Resolved; r != nil {
		note := sentence(escape(scrub(a, r.Note)))
		b.context(":white_check_mark: Resolved "+slackDate(r.At)+". "+note, "Resolved "+clock(r.At)+". "+note)
	}
	return b.message()
}

// renderSummary shows the daily summary: its facts side by side.
func renderSummary(n Notice) Message {
	a := n.Alert
	var b builder
	b.header(":bar_chart: " + scrub(a, a.Summary))
	fields := summaryFields(scrub(a, a.Detail))
	for i := range fields {
		fields[i][1] = escape(fields[i][1])
	}
	b.fields(fields)
	b.command("", a.Action)
	b.context(problemLine(n, true), problemLine(n, false))
	return b.message()
}

// facts are the alert's who and what, as label/value pairs.
func facts(a Alert) [][2]string {
	var step, settlement string
	if a.SettlementID != 0 {
		settlement = strconv.FormatInt(a.SettlementID, 10)
		if a.Deposit.Amount > 0 {
			settlement += " · deposit " + a.Deposit.String()
		}
	}
	if s := a.Step; s != nil {
		step = fmt.Sprintf("%s (step %d, %s)", s.Kind, s.Seq, s.Status)
		if s.Amount.Amount > 0 {
			step += " · " + s.Amount.String()
		}
		if from := masked(s.From); from != "" {
			step += " from " + from
		}
		if to := masked(s.To); to != "" {
			step += " to " + to
		}
	}
	customer := escape(a.Customer)
	if acct := masked(a.PayoutAccount); customer != "" && acct != "" {
		customer += " · payout account " + acct
	}
	return [][2]string{
		{"Customer", customer},
		{"Settlement", settlement},
		{"Step", step},
		{"Provider", escape(a.Provider)},
	}
}

// problemLine is the small print under a problem: its key, the alert, and
// how often it was seen.
func problemLine(n Notice, md bool) string {
	a := n.Alert
	date, code := clock, func(s string) string { return s }
	if md {
		date, code = slackDate, func(s string) string { return "`" + s + "`" }
	}
	line := fmt.Sprintf("Problem %s · %s · alert #%d raised %s", code(escape(a.ProblemKey)), a.Severity, a.ID, date(a.CreatedAt))
	if n.Occurrences > 1 {
		line += fmt.Sprintf(" · seen %s since %s", pipeline.Counted(n.Occurrences, "time", "times"), date(n.FirstAt))
	}
	return line
}

func renderRepeat(n Notice) Message {
	a := n.Alert
	line := func(date func(time.Time) string) string {
		return fmt.Sprintf("Repeated (seen %s since %s): %s. Latest: alert #%d raised %s.",
			pipeline.Counted(max(n.Occurrences, 2), "time", "times"), date(n.FirstAt), escape(title(a)), a.ID, date(a.CreatedAt))
	}
	var b builder
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(":repeat: "+line(slackDate), maxSection)), nil, nil))
	b.text = append(b.text, line(clock))
	b.command("", a.Action)
	return b.message()
}

func renderResolvedReply(n Notice) Message {
	a := n.Alert
	var b builder
	head := escape(strings.TrimPrefix(scrub(a, a.Summary), "Resolved: "))
	note := sentence(escape(scrub(a, a.Detail)))
	md := ":white_check_mark: *Resolved*: " + head
	plain := "Resolved: " + head
	if note != "" {
		md += "\n" + note
		plain += "\n" + note
	}
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(md, maxSection)), nil, nil))
	b.text = append(b.text, plain)
	b.fields(facts(a)[:2])
	b.context(problemLine(Notice{Alert: a}, true), problemLine(Notice{Alert: a}, false))
	return b.message()
}

// stormLine is "214 settlements failed in 5 min at provider X: timeout 211,
// account_frozen 3".
func stormLine(s Storm) string {
	line := fmt.Sprintf("%s %s in %s", pipeline.Grouped(int64(s.Count)), stormNoun(s.Kind), span(s.Window))
	if s.Provider != "" {
		line += " at provider " + s.Provider
	}
	causes := make([]string, 0, len(s.Causes))
	for _, c := range s.Causes {
		causes = append(causes, fmt.Sprintf("%s %s", c.Cause, pipeline.Grouped(int64(c.Count))))
	}
	if len(causes) > 0 {
		line += ": " + strings.Join(causes, ", ")
	}
	return escape(line)
}

func renderStorm(s Storm) Message {
	var b builder
	b.header(":rotating_light: Alert storm: " + fmt.Sprintf("%s %s in %s", pipeline.Grouped(int64(s.Count)), stormNoun(s.Kind), span(s.Window)) + atProvider(s))
	b.section("", stormLine(s))
	doing := fmt.Sprintf("More than %d alerts of this kind came within %s, so settle sends this one summary instead of each, and updates it while the storm lasts. Every alert stays in the alerts table.",
		s.Threshold, span(s.Window))
	if len(s.Settlements) > 0 {
		ids := make([]string, len(s.Settlements))
		for i, id := range s.Settlements {
			ids[i] = strconv.FormatInt(id, 10)
		}
		doing += " Latest settlements: " + strings.Join(ids, ", ") + "."
	}
	b.section("What settle is doing", doing)
	b.command(stormHint(s), s.Action)
	md := fmt.Sprintf("Storm `%s` · %s · %s folded in since %s", escape(s.Key), s.Severity, pipeline.Counted(s.Folded, "alert", "alerts"), slackDate(s.Since))
	plain := fmt.Sprintf("Storm %s · %s · %s folded in since %s", escape(s.Key), s.Severity, pipeline.Counted(s.Folded, "alert", "alerts"), clock(s.Since))
	b.context(md, plain)
	return b.message()
}

// stormHint says what to do about a storm, with the command that replays
// its settlements at once when they failed.
func stormHint(s Storm) string {
	hint := "Many at once usually means the provider, not the customers: check its status first."
	if s.Kind == pipeline.AlertKindNotifyUndelivered {
		return "Many at once means the lender's app is down or refusing events: the money moved, the settlements are SETTLED, and NOTIFY retries on its own."
	}
	if s.Kind != pipeline.AlertKindSettlementFailed {
		return hint
	}
	cmd := "settle replay --failed-since " + s.Since.Add(-time.Minute).UTC().Truncate(time.Minute).Format(time.RFC3339)
	if s.Provider != "" {
		cmd += " --provider " + s.Provider
	}
	return hint + " Once it answers again, replay them all with `" + cmd + ` --reason "…"` + "`: replay never moves money twice."
}

func atProvider(s Storm) string {
	if s.Provider == "" {
		return ""
	}
	return " at provider " + s.Provider
}

func renderStormReply(s Storm) Message {
	line := func(date func(time.Time) string) string {
		return "The storm goes on: " + stormLine(s) + ". " + pipeline.Counted(s.Folded, "alert", "alerts") + " folded in since " + date(s.Since) + "."
	}
	var b builder
	b.blocks = append(b.blocks, slack.NewSectionBlock(mrkdwn(cut(":rotating_light: "+line(slackDate), maxSection)), nil, nil))
	b.text = append(b.text, line(clock))
	b.command("", s.Action)
	return b.message()
}

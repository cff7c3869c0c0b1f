package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/settle-dev/settle/jobs/cronspec"
)

// Validate reports every value that is missing or not allowed, one per line.
// Load calls it; call it again after changing a Config by hand.
func (c *Config) Validate() error {
	return errors.Join(c.validate(Uses{})...)
}

// problems collects validation errors.
type problems []error

func (p *problems) add(format string, args ...any) {
	*p = append(*p, fmt.Errorf("config: "+format, args...))
}

// between adds a problem unless lo <= n <= hi.
func (p *problems) between(key string, n, lo, hi int64) {
	if n < lo || n > hi {
		p.add("%s %d: must be between %d and %d", key, n, lo, hi)
	}
}

// oneOf adds a problem unless s is one of allowed.
func (p *problems) oneOf(key, s string, allowed ...string) {
	if !slices.Contains(allowed, s) {
		p.add("%s %q: must be one of %s", key, s, strings.Join(allowed, ", "))
	}
}

// positive adds a problem unless d > 0.
func (p *problems) positive(key string, d time.Duration) bool {
	if d <= 0 {
		p.add("%s %s: must be more than 0s", key, d)
		return false
	}
	return true
}

func (c *Config) validate(u Uses) []error {
	var p problems
	c.Database.validate(&p)
	if c.Redis.URL != "" || !u.NoRedis {
		c.Redis.validate(&p)
	}
	p.within("scheduler.lease", c.Scheduler.Lease, 3*time.Second, 10*time.Minute)
	if !validAddr(c.HTTP.Addr) {
		p.add("http.addr %q: must be host:port, such as 127.0.0.1:8080", c.HTTP.Addr)
	}
	c.HTTP.validateAuth(&p)
	c.HTTP.validatePrometheus(&p)
	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "text", "json")
	if !currencyCode.MatchString(c.Currency) {
		p.add("currency %q: must be an ISO 4217 code of three capital letters, such as KRW", c.Currency)
	}
	c.Poll.validate(&p)
	c.Worker.validate(&p)
	p.schedule("relay.schedule", c.Relay.Schedule)
	p.schedule("sweep.schedule", c.Sweep.Schedule)
	if p.positive("sweep.stuck_after", c.Sweep.StuckAfter) {
		switch {
		case c.Sweep.StuckAfter <= c.Worker.Lease:
			p.add("sweep.stuck_after %s: must be more than worker.lease (%s): an outcome is unknown for a lease before the sweep asks the bank", c.Sweep.StuckAfter, c.Worker.Lease)
		case c.Sweep.StuckAfter > 168*time.Hour:
			p.add("sweep.stuck_after %s: must be at most 168h", c.Sweep.StuckAfter)
		}
	}
	p.schedule("verify.schedule", c.Verify.Schedule)
	c.validateDailySummary(&p)
	p.schedule("reconcile.schedule", c.Reconcile.Schedule)
	c.Notify.validate(&p, u)
	c.validateProviders(&p, u)
	c.validatePolling(&p)
	return p
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (d *DatabaseConfig) validate(p *problems) {
	if d.URL == "" {
		p.add("database.url is required: set it in the file or in SETTLE_DATABASE_URL")
	} else if u, err := url.Parse(d.URL.Reveal()); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		p.add("database.url %q: must be a URL such as postgres://user:password@host:5432/db", RedactURL(d.URL.Reveal()))
	}
	if d.MaxOpenConns < MinOpenConns {
		p.add("database.max_open_conns %d: too few to work, at least %d: a scheduled job and its lease renewal, alert delivery "+
			"and the step workers each need a connection at once; set %d (the default)", d.MaxOpenConns, MinOpenConns, DefaultMaxOpenConns)
	} else {
		p.between("database.max_open_conns", int64(d.MaxOpenConns), MinOpenConns, 1000)
	}
	p.between("database.max_idle_conns", int64(d.MaxIdleConns), 0, int64(max(d.MaxOpenConns, 0)))
	p.within("database.statement_timeout", d.StatementTimeout, time.Second, 24*time.Hour)
	p.within("database.idle_in_transaction_timeout", d.IdleInTransactionTimeout, time.Second, 24*time.Hour)
	if d.LongStatementTimeout < d.StatementTimeout {
		p.add("database.long_statement_timeout %s: must be at least database.statement_timeout (%s)", d.LongStatementTimeout, d.StatementTimeout)
	} else {
		p.within("database.long_statement_timeout", d.LongStatementTimeout, time.Second, 24*time.Hour)
	}
}

// within adds a problem unless lo <= d <= hi.
func (p *problems) within(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		p.add("%s %s: must be from %s to %s", key, d, lo, hi)
	}
}

func (h *HTTPConfig) validatePrometheus(p *problems) {
	if h.PrometheusURL == "" {
		return
	}
	u, err := url.Parse(h.PrometheusURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.add("http.prometheus_url: must be an http or https URL of a Prometheus server, such as http://prometheus:9090")
	case u.User != nil:
		p.add("http.prometheus_url: must not carry credentials (the dashboard's queries would show them); reach Prometheus over a private network")
	case u.RawQuery != "" || u.Fragment != "":
		p.add("http.prometheus_url %q: no query or fragment: the dashboard appends /api/v1/query_range", h.PrometheusURL)
	}
}

// The messages below never show password or token: both are secrets.
func (h *HTTPConfig) validateAuth(p *problems) {
	switch {
	case (h.User == "") != (h.Password == ""):
		p.add("http.user and http.password go together: set both, or neither")
	case strings.Contains(h.User, ":"):
		p.add("http.user %q: must not contain ':'", h.User)
	}
	if h.Password != "" && len(h.Password.Reveal()) < 16 {
		p.add("http.password: at least 16 characters (prefer SETTLE_HTTP_PASSWORD)")
	}
	if h.Token != "" && len(h.Token.Reveal()) < 16 {
		p.add("http.token: at least 16 characters (prefer SETTLE_HTTP_TOKEN)")
	}
}

func (r *RedisConfig) validate(p *problems) {
	if r.URL == "" {
		p.add("redis.url is required: set it in the file or in SETTLE_REDIS_URL")
		return
	}
	u, err := url.Parse(r.URL.Reveal())
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "redis-sentinel") || u.Host == "" || !redisDB(u.Path) {
		p.add("redis.url %q: must be a URL such as redis://:password@host:6379/0, rediss://…, or for Sentinel "+
			"redis-sentinel://:password@sentinel1:26379,sentinel2:26379/0?master=mymaster", RedactURL(r.URL.Reveal()))
		return
	}
	if u.Scheme == "redis-sentinel" && u.Query().Get("master") == "" {
		p.add("redis.url: a redis-sentinel:// URL needs ?master=NAME, the name Sentinel knows the master by")
	}
}

// redisDB reports whether a Redis URL's path names a database (or none).
func redisDB(path string) bool {
	db := strings.TrimPrefix(path, "/")
	if db == "" {
		return true
	}
	n, err := strconv.Atoi(db)
	return err == nil && n >= 0
}

func validAddr(addr string) bool {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	n, err := strconv.Atoi(port)
	return err == nil && n >= 0 && n <= 65535
}

func (c *PollConfig) validate(p *problems) {
	p.schedule("poll.schedule", c.Schedule)
	p.between("poll.batch_size", int64(c.BatchSize), 1, 100)
	if c.MinDeposit < 1 {
		p.add("poll.min_deposit %d: must be at least 1", c.MinDeposit)
	}
}

func (w *WorkerConfig) validate(p *problems) {
	p.between("worker.concurrency", int64(w.Concurrency), 1, 1000)
	leaseOK := p.positive("worker.lease", w.Lease)
	if p.positive("worker.bank_timeout", w.BankTimeout) && leaseOK && w.BankTimeout >= w.Lease {
		p.add("worker.bank_timeout %s: must be less than worker.lease (%s)", w.BankTimeout, w.Lease)
	}
	p.between("worker.max_attempts", int64(w.MaxAttempts), 1, 100)
	if w.ShutdownTimeout <= w.BankTimeout {
		p.add("worker.shutdown_timeout %s: must be more than worker.bank_timeout (%s)", w.ShutdownTimeout, w.BankTimeout)
	}
	if p.positive("worker.retry_base", w.RetryBase) && w.RetryMax < w.RetryBase {
		p.add("worker.retry_max %s: must be at least worker.retry_base (%s)", w.RetryMax, w.RetryBase)
	}
	if p.positive("worker.unknown_wait", w.UnknownWait) && leaseOK && w.UnknownWait > w.Lease {
		p.add("worker.unknown_wait %s: must be at most worker.lease (%s)", w.UnknownWait, w.Lease)
	}
}

func (n *NotifyConfig) validate(p *problems, u Uses) {
	n.Slack.validate(p, u)
	n.Customer.validate(p)
	p.schedule("notify.delivery_schedule", n.DeliverySchedule)
	p.between("notify.storm_threshold", int64(n.StormThreshold), 1, 100000)
	p.upTo("notify.storm_window", n.StormWindow, 24*time.Hour)
	p.upTo("notify.repeat_interval", n.RepeatInterval, 24*time.Hour)
}

// The messages below never show url or secret: both are secrets.
func (w *WebhookConfig) validate(p *problems) {
	w.validateRetries(p)
	if w.URL == "" {
		if w.Secret != "" {
			p.add("notify.customer_webhook.secret is set but url is not: set url too, or remove the secret")
		}
		return
	}
	if u, err := url.Parse(w.URL.Reveal()); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("notify.customer_webhook.url: must be an absolute http:// or https:// URL")
	}
	if len(w.Secret.Reveal()) < 16 {
		p.add("notify.customer_webhook.secret: required with url, at least 16 characters (prefer SETTLE_NOTIFY_CUSTOMER_WEBHOOK_SECRET)")
	}
	if p.positive("notify.customer_webhook.timeout", w.Timeout) && w.Timeout > time.Minute {
		p.add("notify.customer_webhook.timeout %s: at most 1m", w.Timeout)
	}
}

// validateRetries checks the NOTIFY backoff and its window.
func (w *WebhookConfig) validateRetries(p *problems) {
	const key = "notify.customer_webhook."
	if p.positive(key+"retry_base", w.RetryBase) && w.RetryMax < w.RetryBase {
		p.add(key+"retry_max %s: must be at least "+key+"retry_base (%s)", w.RetryMax, w.RetryBase)
	} else {
		p.upTo(key+"retry_max", w.RetryMax, 24*time.Hour)
	}
	warnOK := p.positive(key+"warn_after", w.WarnAfter)
	p.upTo(key+"give_up_after", w.GiveUpAfter, 30*24*time.Hour)
	if warnOK && w.GiveUpAfter > 0 && w.WarnAfter >= w.GiveUpAfter {
		p.add(key+"warn_after %s: must be less than "+key+"give_up_after (%s), so operators hear of it before it gives up",
			w.WarnAfter, w.GiveUpAfter)
	}
}

// slackChannel is a channel ID or a channel name, with or without its '#'.
var slackChannel = regexp.MustCompile(`^([CGD][A-Z0-9]{8,20}|#?[a-z0-9][a-z0-9._-]{0,79})$`)

// The messages below never show webhook_url or bot_token: both are secrets.
// With u.NoSlack the bot token may be missing.
func (s *SlackConfig) validate(p *problems, u Uses) {
	if s.WebhookURL != "" && s.BotToken != "" {
		p.add("notify.slack: set webhook_url, or bot_token and channel, not both")
	}
	if s.WebhookURL != "" && !secureURL(s.WebhookURL.Reveal()) {
		p.add("notify.slack.webhook_url: must be an https:// URL such as https://hooks.slack.com/services/…, without a user or password (http:// only to this machine)")
	}
	if tok := s.BotToken.Reveal(); tok != "" && strings.ContainsFunc(tok, unicode.IsSpace) {
		p.add("notify.slack.bot_token: must be one token (xoxb-…) without spaces or line breaks")
	}
	switch {
	case s.BotToken != "" && s.Channel == "":
		p.add("notify.slack.channel is required with notify.slack.bot_token: a channel ID such as C0123456789 or a name such as #settle-alerts")
	case s.BotToken == "" && s.Channel != "" && !u.NoSlack:
		p.add("notify.slack.channel %q: only used with notify.slack.bot_token (a webhook posts to the channel it was made for)", s.Channel)
	case s.Channel != "" && !slackChannel.MatchString(s.Channel):
		p.add("notify.slack.channel %q: must be a channel ID such as C0123456789 or a name such as #settle-alerts", s.Channel)
	}
	if u, err := url.Parse(s.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		p.add("notify.slack.api_url %q: must be an absolute http:// or https:// URL without a user or password, such as https://slack.com/api/", showURL(s.APIURL))
	}
	s.Interactive.validate(p, s.BotToken != "", u)
}

var (
	slackTeam = regexp.MustCompile(`^[TE][A-Z0-9]{2,20}$`)
	slackUser = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)
	slackPath = regexp.MustCompile(`^/[A-Za-z0-9/_.-]*$`)
)

// The messages below never show app_token or signing_secret: both are
// secrets. With u.NoSlack they, and the bot token, may be missing.
func (c *InteractiveConfig) validate(p *problems, bot bool, u Uses) {
	const key = "notify.slack.interactive."
	modes := []string{InteractiveOff, InteractiveSocket, InteractiveHTTP}
	p.oneOf(key+"mode", c.Mode, modes...)
	if !c.On() || !slices.Contains(modes, c.Mode) {
		return
	}
	if !bot && !u.NoSlack {
		p.add(key+"mode %q: needs notify.slack.bot_token and channel: the buttons are on the bot's alerts", c.Mode)
	}
	tok, secret := c.AppToken.Reveal(), c.SigningSecret.Reveal()
	switch c.Mode {
	case InteractiveSocket:
		switch {
		case tok == "" && u.NoSlack:
		case tok == "":
			p.add(key + "app_token is required with mode socket: an app-level token (xapp-…) with connections:write; " +
				"set app_token, app_token_file or SETTLE_NOTIFY_SLACK_INTERACTIVE_APP_TOKEN")
		case !strings.HasPrefix(tok, "xapp-") || strings.ContainsFunc(tok, unicode.IsSpace):
			p.add(key + "app_token: must be one app-level token (xapp-…) without spaces or line breaks, not the bot token")
		}
		if secret != "" {
			p.add(key + "signing_secret: only used with mode http")
		}
	case InteractiveHTTP:
		switch {
		case secret == "" && u.NoSlack:
		case secret == "":
			p.add(key + "signing_secret is required with mode http: the app's signing secret (Basic Information → App Credentials); " +
				"set signing_secret, signing_secret_file or SETTLE_NOTIFY_SLACK_INTERACTIVE_SIGNING_SECRET")
		case len(secret) < 16 || strings.ContainsFunc(secret, unicode.IsSpace):
			p.add(key + "signing_secret: must be the app's signing secret, at least 16 characters without spaces or line breaks")
		}
		if tok != "" {
			p.add(key + "app_token: only used with mode socket")
		}
		if !slackPath.MatchString(c.Path) || c.Path == "/" {
			p.add(key+"path %q: must be a path such as /slack/interactions", c.Path)
		}
	}
	if !slackTeam.MatchString(c.TeamID) {
		p.add(key+"team_id %q: must be the workspace's ID, such as T0123456789: clicks from any other workspace are refused", c.TeamID)
	}
	p.within(key+"approval_window", c.ApprovalWindow, time.Minute, 24*time.Hour)
	approvers, seen := 0, map[string]int{}
	for i, u := range c.Users {
		k := fmt.Sprintf("%susers[%d]", key, i)
		if j, dup := seen[u.ID]; dup {
			p.add("%s.id %q: already listed as users[%d]", k, u.ID, j)
		} else if !slackUser.MatchString(u.ID) {
			p.add("%s.id %q: must be a Slack member ID such as U0123456789 (the profile's ⋮ menu, Copy member ID)", k, u.ID)
		}
		seen[u.ID] = i
		p.oneOf(k+".role", u.Role, SlackViewer, SlackOperator, SlackApprover)
		if u.Role == SlackApprover {
			approvers++
		}
	}
	if approvers == 0 {
		p.add(key + "users: at least one user with role approver is required: a request runs only once another user who is an approver approves it")
	}
}

// secureURL reports whether s is an absolute https URL without user info,
// or an http one to this machine (a test server or a local proxy).
func secureURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil {
		return false
	}
	switch u.Scheme {
	case "https":
		return true
	case "http":
		host := u.Hostname()
		ip := net.ParseIP(host)
		return host == "localhost" || ip != nil && ip.IsLoopback()
	}
	return false
}

// upTo adds a problem unless 0 < d <= most.
func (p *problems) upTo(key string, d, most time.Duration) {
	if p.positive(key, d) && d > most {
		p.add("%s %s: must be at most %s", key, d, most)
	}
}

// schedule adds a problem unless spec is a schedule the scheduler runs.
func (p *problems) schedule(key, spec string) {
	if err := cronspec.Check(spec); err != nil {
		p.add("%s %q: %v; use a cron spec such as \"*/5 * * * *\" or \"@every 10s\"", key, spec, err)
	}
}

func (c *Config) validateProviders(p *problems, u Uses) {
	if len(c.Providers) == 0 {
		p.add("providers: at least one provider is required")
		return
	}
	seen := make(map[string]int)    // name -> index
	envSeen := make(map[string]int) // env NAME -> index
	for i := range c.Providers {
		pc := &c.Providers[i]
		key := fmt.Sprintf("providers[%d]", i)
		pc.validate(p, key, c.Worker.Lease, u)
		if j, dup := seen[pc.Name]; dup && pc.Name != "" {
			p.add("%s.name %q: already used by providers[%d]", key, pc.Name, j)
		} else if j, dup := envSeen[providerEnvName(pc.Name)]; dup && pc.Name != "" {
			p.add("%s.name %q: its variables SETTLE_PROVIDERS_%s_* are those of providers[%d] too; rename one",
				key, pc.Name, providerEnvName(pc.Name), j)
		}
		seen[pc.Name], envSeen[providerEnvName(pc.Name)] = i, i
	}
	if _, ok := seen[c.DefaultProvider]; !ok {
		p.add("default_provider %q: must be the name of a provider (%s)", c.DefaultProvider, strings.Join(c.ProviderNames(), ", "))
	}
}

// ProviderNames are the names of the configured providers, in order.
func (c *Config) ProviderNames() []string {
	names := make([]string, len(c.Providers))
	for i, pc := range c.Providers {
		names[i] = pc.Name
	}
	return names
}

func (pc *ProviderConfig) validate(p *problems, key string, lease time.Duration, u Uses) {
	switch {
	case pc.Name == "":
		p.add("%s.name is required", key)
	case !providerName.MatchString(pc.Name):
		p.add("%s.name %q: must be 1 to 32 of a-z, 0-9, _ and -", key, pc.Name)
	}
	p.dialect(key+".dialect", pc.Dialect)
	if u, err := url.Parse(pc.BaseURL); pc.BaseURL == "" {
		p.add("%s.base_url is required", key)
	} else if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.add("%s.base_url %q: must be an absolute http:// or https:// URL", key, showURL(pc.BaseURL))
	} else if u.User != nil {
		p.add("%s.base_url %q: must not hold a user or password (set token)", key, RedactURL(pc.BaseURL))
	}
	pc.validateCredentials(p, key, u)
	if p.positive(key+".timeout", pc.Timeout) && pc.Timeout >= lease {
		p.add("%s.timeout %s: must be less than worker.lease (%s)", key, pc.Timeout, lease)
	}
	ranges := []struct {
		name      string
		v, lo, hi int
	}{{"rate_limit_rps", pc.RateLimitRPS, 0, 100000}, {"burst", pc.Burst, 0, 100000},
		{"max_in_flight", pc.MaxInFlight, 1, 10000}, {"breaker_failures", pc.BreakerFailures, 1, 1000}}
	for _, r := range ranges {
		if r.v < r.lo || r.v > r.hi {
			p.add("%s.%s %d: must be from %d to %d", key, r.name, r.v, r.lo, r.hi)
		}
	}
	if _, err := time.LoadLocation(pc.TimeZone); err != nil || pc.TimeZone == "" {
		p.add("%s.time_zone %q: must be an IANA time zone such as Asia/Seoul or UTC (the zone the bank dates transfers in)", key, pc.TimeZone)
	}
	if pc.RateLimitRPS > 0 && pc.Burst > pc.RateLimitRPS {
		p.add("%s.burst %d: must not exceed rate_limit_rps (%d): the throttle refills at rate_limit_rps − (burst − 1) so that "+
			"no second sees more than the bank's limit; set burst to at most %d", key, pc.Burst, pc.RateLimitRPS, pc.RateLimitRPS)
	}
	p.positive(key+".breaker_cooldown", pc.BreakerCooldown)
	if pc.KeyRetention <= lease {
		p.add("%s.key_retention %s: must be more than worker.lease (%s); the bank's documented key retention, e.g. 720h",
			key, pc.KeyRetention, lease)
	}
	accounts := []struct{ name, value string }{
		{"collection", pc.Accounts.Collection}, {"lender", pc.Accounts.Lender},
		{"holding", pc.Accounts.Holding}, {"fee", pc.Accounts.Fee},
	}
	for _, a := range accounts {
		if strings.TrimSpace(a.value) == "" {
			p.add("%s.accounts.%s is required", key, a.name)
		}
	}
}

// dialect adds a problem unless name is a dialect this build speaks.
func (p *problems) dialect(key, name string) {
	list := strings.Join(SupportedDialects(), ", ")
	i := slices.IndexFunc(dialects, func(d dialect) bool { return d.name == name })
	switch {
	case name == "":
		p.add("%s is required: one of %s", key, list)
	case i < 0:
		p.add("%s %q: must be one of %s", key, name, list)
	case !dialects[i].supported:
		p.add("%s %q: not supported yet (supported: %s)", key, name, list)
	}
}

// showURL returns a URL that is not a secret for a message: as written if it
// parses without user info or query, else through RedactURL.
func showURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User == nil && u.RawQuery == "" {
		return s
	}
	return RedactURL(s)
}

//go:build unix

package web_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/settle-dev/settle/web"
)

// ArtifactsEnv names the directory where tests leave files for people to
// look at (the status page's screenshot); default: the test's temporary
// directory, logged.
const ArtifactsEnv = "SETTLE_TEST_ARTIFACTS"

func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(ArtifactsEnv)
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// chromium runs Debian's headless Chromium with args and returns its
// stdout. The browser and its helper processes are killed if it hangs.
func chromium(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, lastLines(stderr.String(), 20))
	}
	return stdout.String()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

// The status page as an operator's browser renders it: through basic auth,
// with the failed settlement and its replay command in the DOM, and a
// screenshot to look at.
func TestStatusPageInChromium(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed: apt-get install -y chromium (make test installs it)")
	}
	p := newPayday(t)
	h, err := web.New(web.Config{Credentials: creds, Status: p.db, Page: web.PageConfig{
		TimeZone:     "Asia/Seoul",
		QueueLatency: func(context.Context) (time.Duration, error) { return 2 * time.Second, nil },
		Providers: func() []web.ProviderHealth {
			return []web.ProviderHealth{{Name: "sandbox", State: "closed"}, {Name: "legacy", State: "half-open"}}
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(creds.User, creds.Password) // Chromium sends them as basic auth

	dom := chromium(t, bin, "--dump-dom", u.String())
	for _, want := range []string{web.ReplayCommand(p.failedID), p.reason, p.failed.Ref, "1 failed settlement"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered DOM lacks %q:\n%s", want, lastLines(dom, 80))
		}
	}
	if strings.Contains(dom, "401 unauthorized") || strings.Contains(dom, p.failed.Payout) || strings.Contains(dom, p.holder) {
		t.Errorf("the DOM is a refusal, or shows an account number or a name:\n%s", dom)
	}

	shot := filepath.Join(artifactsDir(t), "status-page.png")
	_ = os.Remove(shot)
	chromium(t, bin, "--screenshot="+shot, "--window-size=1280,900", "--hide-scrollbars", u.String())
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", shot, err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
	}
	t.Logf("screenshot of the status page: %s", shot)
}

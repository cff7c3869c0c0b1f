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

	"github.com/robfig/cron/v3"
)

// Validate reports every value that is missing or not allowed, one per line.
// Load calls it; call it again after changing a Config by hand.
func (c *Config) Validate() error {
	return errors.Join(c.validate()...)
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

func (c *Config) validate() []error {
	var p problems
	c.Database.validate(&p)
	c.Redis.validate(&p)
	if !validAddr(c.HTTP.Addr) {
		p.add("http.addr %q: must be host:port, such as 127.0.0.1:8080", c.HTTP.Addr)
	}
	p.oneOf("log.level", c.Log.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", c.Log.Format, "text", "json")
	if !currencyCode.MatchString(c.Currency) {
		p.add("currency %q: must be an ISO 4217 code of three capital letters, such as KRW", c.Currency)
	}
	c.Poll.validate(&p)
	c.Worker.validate(&p)
	p.schedule("relay.schedule", c.Relay.Schedule)
	p.schedule("sweep.schedule", c.Sweep.Schedule)
	c.validateProviders(&p)
	return p
}

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

func (d *DatabaseConfig) validate(p *problems) {
	if d.URL == "" {
		p.add("database.url is required: set it in the file or in SETTLE_DATABASE_URL")
	} else if u, err := url.Parse(d.URL.Reveal()); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		p.add("database.url %q: must be a URL such as postgres://user:password@host:5432/db", RedactURL(d.URL.Reveal()))
	}
	p.between("database.max_open_conns", int64(d.MaxOpenConns), 1, 1000)
	p.between("database.max_idle_conns", int64(d.MaxIdleConns), 0, int64(max(d.MaxOpenConns, 0)))
}

func (r *RedisConfig) validate(p *problems) {
	if r.URL == "" {
		p.add("redis.url is required: set it in the file or in SETTLE_REDIS_URL")
		return
	}
	u, err := url.Parse(r.URL.Reveal())
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss") || u.Host == "" || !redisDB(u.Path) {
		p.add("redis.url %q: must be a URL such as redis://:password@host:6379/0 or rediss://…", RedactURL(r.URL.Reveal()))
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
}

// cronParser parses schedules as the jobs package runs them: five fields, an
// optional leading seconds field, or a descriptor such as "@every 10s".
var cronParser = cron.NewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule adds a problem unless spec is a schedule cronParser accepts.
func (p *problems) schedule(key, spec string) {
	if err := parseSchedule(spec); err != nil {
		p.add("%s %q: %v; use a cron spec such as \"*/10 * * * * *\" or \"@every 10s\"", key, spec, err)
	}
}

func parseSchedule(spec string) (err error) {
	defer func() {
		if recover() != nil { // cron v3 panics on some malformed TZ= prefixes
			err = errors.New("not a valid schedule")
		}
	}()
	if every, ok := strings.CutPrefix(spec, "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(every)); err == nil && d < time.Second {
			return errors.New("the interval must be at least 1s")
		}
	}
	_, err = cronParser.Parse(spec)
	return err
}

func (c *Config) validateProviders(p *problems) {
	if len(c.Providers) == 0 {
		p.add("providers: at least one provider is required")
		return
	}
	seen := make(map[string]int)    // name -> index
	envSeen := make(map[string]int) // env NAME -> index
	for i := range c.Providers {
		pc := &c.Providers[i]
		key := fmt.Sprintf("providers[%d]", i)
		pc.validate(p, key, c.Worker.Lease)
		if j, dup := seen[pc.Name]; dup && pc.Name != "" {
			p.add("%s.name %q: already used by providers[%d]", key, pc.Name, j)
		} else if j, dup := envSeen[providerEnvName(pc.Name)]; dup && pc.Name != "" {
			p.add("%s.name %q: its variables SETTLE_PROVIDERS_%s_* are those of providers[%d] too; rename one",
				key, pc.Name, providerEnvName(pc.Name), j)
		}
		seen[pc.Name], envSeen[providerEnvName(pc.Name)] = i, i
	}
	if _, ok := seen[c.DefaultProvider]; !ok {
		p.add("default_provider %q: must be the name of a provider (%s)", c.DefaultProvider, strings.Join(c.providerNames(), ", "))
	}
}

func (c *Config) providerNames() []string {
	names := make([]string, len(c.Providers))
	for i, pc := range c.Providers {
		names[i] = pc.Name
	}
	return names
}

func (pc *ProviderConfig) validate(p *problems, key string, lease time.Duration) {
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
	if pc.Token == "" && pc.TokenFile == "" {
		p.add("%s.token is required: set token, token_file or SETTLE_PROVIDERS_%s_TOKEN", key, providerEnvName(pc.Name))
	}
	if p.positive(key+".timeout", pc.Timeout) && pc.Timeout >= lease {
		p.add("%s.timeout %s: must be less than worker.lease (%s)", key, pc.Timeout, lease)
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
	var supported []string
	for _, d := range dialects {
		if d.supported {
			supported = append(supported, d.name)
		}
	}
	list := strings.Join(supported, ", ")
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

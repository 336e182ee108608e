// Package config reads the invoker's configuration the way the upstream OpenWhisk invoker image
// is given it: plain environment variables (KAFKA_HOSTS, RUNTIMES_MANIFEST, PORT, …), CONFIG_*
// variables and -D properties in INVOKER_OPTS (both naming Typesafe Config properties), and the
// command line --id, --uniqueName, --displayedName, --overwriteId. snapinvoker's own settings are
// SNAPINVOKER_* variables and matching flags.
//
// Load is pure: the environment and the arguments are passed in, nothing is read from the process.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors; every error Load returns is an *Error wrapping one of them.
var (
	ErrMissing = errors.New("required setting is missing")
	ErrInvalid = errors.New("invalid value")
)

// Error names the setting (environment variable, property or flag) that is wrong.
type Error struct {
	Setting string
	Err     error
}

func (e *Error) Error() string { return e.Setting + ": " + e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Config is everything the invoker process needs to start.
type Config struct {
	// KafkaHosts are the bootstrap servers (KAFKA_HOSTS, comma separated).
	KafkaHosts []string
	// ZooKeeperHosts (ZOOKEEPER_HOSTS) are needed only to assign an id from --uniqueName.
	ZooKeeperHosts []string
	// RuntimesManifest is the raw JSON of RUNTIMES_MANIFEST; the invoker validates it with
	// package activation at start-up.
	RuntimesManifest string
	// Port is the admin HTTP port (PORT, default 8080).
	Port int
	// APIHost is __OW_API_HOST for actions: WHISK_API_HOST_PROTO://WHISK_API_HOST_NAME:WHISK_API_HOST_PORT.
	APIHost string

	// UserMemory is whisk.container-pool.user-memory in bytes (default 1024m).
	UserMemory int64
	// ConcurrentPeekFactor is whisk.container-pool.concurrent-peek-factor (default 0.5).
	ConcurrentPeekFactor float64
	// BlacklistPollInterval is whisk.blacklist.poll-interval (5 minutes).
	BlacklistPollInterval time.Duration
	// PauseGrace and IdleContainer are whisk.container-proxy.timeouts.{pause-grace,idle-container}
	// (10 s and 10 min); PrewarmCheckInterval is
	// whisk.container-pool.prewarm-expiration-check-interval (10 min).
	PauseGrace, IdleContainer, PrewarmCheckInterval time.Duration

	CouchDB CouchDB
	Kafka   Kafka
	// UserEvents is whisk.user-events.enabled: produce an EventMessage per completed activation.
	UserEvents bool
	// AdminUser and AdminPassword guard /enable, /disable and /isEnabled
	// (whisk.invoker.username/password, default invoker.user/invoker.pass).
	AdminUser, AdminPassword string

	Limits Limits
	// StoreBlockingResultLevel and StoreNonBlockingResultLevel are
	// whisk.activation.store-[non-]blocking-result-level: STORE_ALWAYS, STORE_FAILURES or
	// STORE_FAILURES_NOT_APPLICATION_ERRORS.
	StoreBlockingResultLevel, StoreNonBlockingResultLevel string
	// ContainerFactory is the whisk.spi.ContainerFactoryProvider class named in INVOKER_OPTS, if any.
	ContainerFactory string
	// ParameterKeys are whisk.parameter-storage.{current,aes-128,aes-256} (base64 keys) that
	// decrypt encrypted action parameters; empty when encryption is off.
	ParameterKeys ParameterKeys

	Identity Identity
	Snap     Snap
}

// CouchDB is the datastore (whisk.couchdb.*).
type CouchDB struct {
	// URL is protocol://host:port, without credentials.
	URL                string
	Username, Password string
	// EntityDB, ActivationDB and AuthDB are whisk.couchdb.databases.{WhiskEntity,WhiskActivation,WhiskAuth}.
	EntityDB, ActivationDB, AuthDB string
}

// Kafka holds the topic settings (whisk.kafka.*).
type Kafka struct {
	// TopicPrefix is prepended to invoker<N>, completed<C> and health.
	TopicPrefix string
	// UserEventPrefix is prepended to events.
	UserEventPrefix string
}

// Limits are the system action limits; they must match the controller's.
type Limits struct {
	MinMemory, MaxMemory, StdMemory int64 // bytes (whisk.memory.*)
	MinTime, MaxTime, StdTime       time.Duration
	MinLogs, MaxLogs, StdLogs       int64 // bytes (whisk.log-limit.*)
	MinConcurrency, MaxConcurrency  int
	StdConcurrency                  int
	PayloadMax                      int64 // whisk.activation.payload.max, bytes
}

// ParameterKeys are the parameter encryption keys, as configured (base64 text).
type ParameterKeys struct {
	Current, AES128, AES256 string
}

// Identity is how the invoker learns its number (protocol spec §9).
type Identity struct {
	// ID is --id; HasID says whether it was given.
	ID    int
	HasID bool
	// UniqueName (--uniqueName) is the ZooKeeper key for id assignment.
	UniqueName string
	// DisplayedName (--displayedName) is shown by the controller.
	DisplayedName string
	// OverwriteID (--overwriteId) reassigns UniqueName to this id; HasOverwriteID says whether given.
	OverwriteID    int
	HasOverwriteID bool
}

// Snap holds snapinvoker's own settings.
type Snap struct {
	// Drivers lists, per kind pattern, the drivers to try in order (SNAPINVOKER_DRIVERS,
	// --drivers): "python:*=unikernel,container;nodejs:20=container;*=unikernel,jvm,container".
	// Empty means every registered driver that supports the kind, in registry order.
	Drivers []DriverRule
	// SnapshotCacheSize bounds the snapshot cache in bytes (SNAPINVOKER_SNAPSHOT_CACHE_SIZE,
	// --snapshot-cache-size, default 2g).
	SnapshotCacheSize int64
	// ActionCacheEntries bounds the (docid, revision) action cache (SNAPINVOKER_ACTION_CACHE_ENTRIES,
	// default 1024).
	ActionCacheEntries int
	// StoreBatchSize bounds one _bulk_docs request (SNAPINVOKER_STORE_BATCH_SIZE, default 500).
	StoreBatchSize int
	// DriverOptions are per-driver options (SNAPINVOKER_DRIVER_OPTIONS, --driver-options):
	// "container.engine=docker;container.docker-network=openwhisk" gives the container driver
	// engine=docker and docker-network=openwhisk.
	DriverOptions map[string]map[string]string
	// KafkaMaxWait is the longest a Kafka fetch waits for records (SNAPINVOKER_KAFKA_MAX_WAIT,
	// default 500ms as upstream's fetch.max.wait.ms).
	KafkaMaxWait time.Duration
	// StateDir holds snapshots and other on-disk state (SNAPINVOKER_STATE_DIR, --state-dir,
	// default /var/lib/snapinvoker).
	StateDir string
}

// DriverRule is one entry of the driver order: a kind ("python:3.11"), a family pattern
// ("python:*") or "*", and the drivers to try for it.
type DriverRule struct {
	Kind    string
	Drivers []string
}

// DriversFor returns the driver order for kind: an exact rule wins over family:* over *.
// It returns nil when no rule matches.
func (s Snap) DriversFor(kind string) []string {
	family, _, _ := strings.Cut(kind, ":")
	var fam, any []string
	for _, r := range s.Drivers {
		switch r.Kind {
		case kind:
			return r.Drivers
		case family + ":*":
			fam = r.Drivers
		case "*":
			any = r.Drivers
		}
	}
	if fam != nil {
		return fam
	}
	return any
}

// MaxPeek is the number of activations the feed may hand out before earlier ones are
// processed (protocol spec §1): max(containers, floor(containers × max concurrency × peek factor))
// with containers = user memory / minimum action memory, and at least 1.
func (c Config) MaxPeek() int {
	if c.Limits.MinMemory <= 0 {
		return 1
	}
	containers := int(c.UserMemory / c.Limits.MinMemory)
	peek := int(float64(containers) * float64(c.Limits.MaxConcurrency) * c.ConcurrentPeekFactor)
	return max(containers, peek, 1)
}

// Load reads the configuration from environ (KEY=VALUE strings, as os.Environ returns) and the
// subcommand's arguments. The first problem found is returned as an *Error naming the setting.
func Load(environ []string, args []string) (Config, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	p := newProps(env)
	var c Config
	var err error
	fail := func(e error) (Config, error) { return Config{}, e }

	// Identity and snapinvoker's flags come first so that a bad flag is reported even when the
	// environment is incomplete.
	if err = c.parseFlags(env, args); err != nil {
		return fail(err)
	}

	if c.KafkaHosts, err = hostList(env, "KAFKA_HOSTS", true); err != nil {
		return fail(err)
	}
	if c.ZooKeeperHosts, err = hostList(env, "ZOOKEEPER_HOSTS", false); err != nil {
		return fail(err)
	}
	if !c.Identity.HasID {
		switch {
		case c.Identity.UniqueName == "":
			return fail(&Error{"--id or --uniqueName", ErrMissing})
		case len(c.ZooKeeperHosts) == 0:
			return fail(&Error{"ZOOKEEPER_HOSTS", fmt.Errorf("%w (needed to assign an id to --uniqueName %q)", ErrMissing, c.Identity.UniqueName)})
		}
	}
	if c.RuntimesManifest = strings.TrimSpace(env["RUNTIMES_MANIFEST"]); c.RuntimesManifest == "" {
		return fail(&Error{"RUNTIMES_MANIFEST", ErrMissing})
	}
	if c.Port, err = intSetting(env, "PORT", 8080, 1, 65535); err != nil {
		return fail(err)
	}
	if c.APIHost, err = apiHost(env); err != nil {
		return fail(err)
	}

	if c.UserMemory, err = p.size("whisk.container-pool.user-memory", "1024m"); err != nil {
		return fail(err)
	}
	if c.ConcurrentPeekFactor, err = p.float("whisk.container-pool.concurrent-peek-factor", 0.5); err != nil {
		return fail(err)
	}
	for _, d := range []struct {
		dst       *time.Duration
		prop, def string
	}{
		{&c.PauseGrace, "whisk.container-proxy.timeouts.pause-grace", "10 seconds"},
		{&c.IdleContainer, "whisk.container-proxy.timeouts.idle-container", "10 minutes"},
		{&c.PrewarmCheckInterval, "whisk.container-pool.prewarm-expiration-check-interval", "10 minutes"},
		{&c.BlacklistPollInterval, "whisk.blacklist.poll-interval", "5 minutes"},
	} {
		if *d.dst, err = p.duration(d.prop, d.def); err != nil {
			return fail(err)
		}
	}
	if c.CouchDB, err = couchSettings(p); err != nil {
		return fail(err)
	}
	c.Kafka.TopicPrefix = p.str("whisk.kafka.topics.prefix", "")
	c.Kafka.UserEventPrefix = p.str("whisk.kafka.topics.user-event.prefix", "")
	if c.UserEvents, err = p.bool("whisk.user-events.enabled", false); err != nil {
		return fail(err)
	}
	c.AdminUser = p.str("whisk.invoker.username", "invoker.user")
	c.AdminPassword = p.str("whisk.invoker.password", "invoker.pass")
	if c.Limits, err = limitSettings(p); err != nil {
		return fail(err)
	}
	if c.UserMemory < c.Limits.MinMemory {
		return fail(p.invalid("whisk.container-pool.user-memory", fmt.Errorf("%d bytes is less than the minimum action memory %d bytes", c.UserMemory, c.Limits.MinMemory)))
	}
	for _, lv := range []struct {
		dst  *string
		prop string
	}{
		{&c.StoreBlockingResultLevel, "whisk.activation.store-blocking-result-level"},
		{&c.StoreNonBlockingResultLevel, "whisk.activation.store-non-blocking-result-level"},
	} {
		*lv.dst = p.str(lv.prop, "STORE_ALWAYS")
		switch *lv.dst {
		case "STORE_ALWAYS", "STORE_FAILURES", "STORE_FAILURES_NOT_APPLICATION_ERRORS":
		default:
			return fail(p.invalid(lv.prop, fmt.Errorf("%q is not STORE_ALWAYS, STORE_FAILURES or STORE_FAILURES_NOT_APPLICATION_ERRORS", *lv.dst)))
		}
	}
	c.ContainerFactory = p.str("whisk.spi.ContainerFactoryProvider", "")
	c.ParameterKeys = ParameterKeys{
		Current: p.str("whisk.parameter-storage.current", ""),
		// An environment variable cannot easily carry "aes-128", so "aes128" is read as well.
		AES128: p.str("whisk.parameter-storage.aes-128", p.str("whisk.parameter-storage.aes128", "")),
		AES256: p.str("whisk.parameter-storage.aes-256", p.str("whisk.parameter-storage.aes256", "")),
	}
	return c, nil
}

func (c *Config) parseFlags(env map[string]string, args []string) error {
	fs := flag.NewFlagSet("invoker", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var id, overwrite string
	fs.StringVar(&id, "id", "", "invoker id")
	fs.StringVar(&c.Identity.UniqueName, "uniqueName", "", "unique name for ZooKeeper id assignment")
	fs.StringVar(&c.Identity.DisplayedName, "displayedName", "", "name the controller displays")
	fs.StringVar(&overwrite, "overwriteId", "", "reassign the unique name to this id")
	drivers := fs.String("drivers", env["SNAPINVOKER_DRIVERS"], "driver order per kind")
	cacheSize := fs.String("snapshot-cache-size", envOr(env, "SNAPINVOKER_SNAPSHOT_CACHE_SIZE", "2g"), "snapshot cache size")
	driverOpts := fs.String("driver-options", env["SNAPINVOKER_DRIVER_OPTIONS"], "per-driver options")
	fs.StringVar(&c.Snap.StateDir, "state-dir", envOr(env, "SNAPINVOKER_STATE_DIR", "/var/lib/snapinvoker"), "state directory")
	if err := fs.Parse(args); err != nil {
		return &Error{"command line", fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	if fs.NArg() > 0 {
		return &Error{"command line", fmt.Errorf("%w: unexpected argument %q", ErrInvalid, fs.Arg(0))}
	}
	var err error
	if id != "" {
		if c.Identity.ID, err = strconv.Atoi(id); err != nil || c.Identity.ID < 0 {
			return &Error{"--id", fmt.Errorf("%w: %q is not a non-negative integer", ErrInvalid, id)}
		}
		c.Identity.HasID = true
	}
	if overwrite != "" {
		if c.Identity.OverwriteID, err = strconv.Atoi(overwrite); err != nil || c.Identity.OverwriteID < 0 {
			return &Error{"--overwriteId", fmt.Errorf("%w: %q is not a non-negative integer", ErrInvalid, overwrite)}
		}
		c.Identity.HasOverwriteID = true
	}
	if c.Snap.Drivers, err = ParseDriverRules(*drivers); err != nil {
		return &Error{"SNAPINVOKER_DRIVERS", fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	if c.Snap.DriverOptions, err = ParseDriverOptions(*driverOpts); err != nil {
		return &Error{"SNAPINVOKER_DRIVER_OPTIONS", fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	if c.Snap.SnapshotCacheSize, err = ParseSize(*cacheSize); err != nil {
		return &Error{"SNAPINVOKER_SNAPSHOT_CACHE_SIZE", fmt.Errorf("%w: %v", ErrInvalid, err)}
	}
	if c.Snap.KafkaMaxWait, err = ParseDuration(envOr(env, "SNAPINVOKER_KAFKA_MAX_WAIT", "500ms")); err != nil || c.Snap.KafkaMaxWait <= 0 {
		return &Error{"SNAPINVOKER_KAFKA_MAX_WAIT", fmt.Errorf("%w: %q is not a positive duration", ErrInvalid, env["SNAPINVOKER_KAFKA_MAX_WAIT"])}
	}
	if c.Snap.ActionCacheEntries, err = intSetting(env, "SNAPINVOKER_ACTION_CACHE_ENTRIES", 1024, 1, 1<<24); err != nil {
		return err
	}
	if c.Snap.StoreBatchSize, err = intSetting(env, "SNAPINVOKER_STORE_BATCH_SIZE", 500, 1, 100000); err != nil {
		return err
	}
	return nil
}

var driverName = regexp.MustCompile(`^[a-z][a-z0-9_-]*$`)

// ParseDriverRules parses "kind=driver,driver;kind=driver".
func ParseDriverRules(s string) ([]DriverRule, error) {
	var rules []DriverRule
	seen := map[string]bool{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, list, ok := strings.Cut(part, "=")
		kind = strings.TrimSpace(kind)
		if !ok || kind == "" {
			return nil, fmt.Errorf("rule %q is not KIND=DRIVER[,DRIVER...]", part)
		}
		if seen[kind] {
			return nil, fmt.Errorf("kind %q appears twice", kind)
		}
		seen[kind] = true
		r := DriverRule{Kind: kind}
		for _, d := range strings.Split(list, ",") {
			d = strings.TrimSpace(d)
			if !driverName.MatchString(d) {
				return nil, fmt.Errorf("rule %q: bad driver name %q", part, d)
			}
			r.Drivers = append(r.Drivers, d)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// ParseDriverOptions parses "driver.key=value;driver.key=value".
func ParseDriverOptions(s string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	for _, part := range strings.Split(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kv, val, ok := strings.Cut(part, "=")
		drv, key, ok2 := strings.Cut(strings.TrimSpace(kv), ".")
		if !ok || !ok2 || !driverName.MatchString(drv) || key == "" {
			return nil, fmt.Errorf("option %q is not DRIVER.KEY=VALUE", part)
		}
		if out[drv] == nil {
			out[drv] = map[string]string{}
		}
		out[drv][key] = strings.TrimSpace(val)
	}
	return out, nil
}

func envOr(env map[string]string, k, def string) string {
	if v, ok := env[k]; ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func intSetting(env map[string]string, k string, def, lo, hi int) (int, error) {
	v := strings.TrimSpace(env[k])
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, &Error{k, fmt.Errorf("%w: %q is not an integer in [%d, %d]", ErrInvalid, v, lo, hi)}
	}
	return n, nil
}

func hostList(env map[string]string, k string, required bool) ([]string, error) {
	var hosts []string
	for _, h := range strings.Split(env[k], ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, port, err := net.SplitHostPort(h); err != nil || port == "" {
			return nil, &Error{k, fmt.Errorf("%w: %q is not host:port", ErrInvalid, h)}
		}
		hosts = append(hosts, h)
	}
	if required && len(hosts) == 0 {
		return nil, &Error{k, ErrMissing}
	}
	return hosts, nil
}

func apiHost(env map[string]string) (string, error) {
	name := strings.TrimSpace(env["WHISK_API_HOST_NAME"])
	if name == "" {
		return "", &Error{"WHISK_API_HOST_NAME", ErrMissing}
	}
	proto := envOr(env, "WHISK_API_HOST_PROTO", "https")
	if proto != "http" && proto != "https" {
		return "", &Error{"WHISK_API_HOST_PROTO", fmt.Errorf("%w: %q is not http or https", ErrInvalid, proto)}
	}
	port := envOr(env, "WHISK_API_HOST_PORT", "443")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", &Error{"WHISK_API_HOST_PORT", fmt.Errorf("%w: %q is not a port", ErrInvalid, port)}
	}
	return proto + "://" + name + ":" + port, nil
}

func couchSettings(p props) (CouchDB, error) {
	var c CouchDB
	proto := p.str("whisk.couchdb.protocol", "http")
	if proto != "http" && proto != "https" {
		return c, p.invalid("whisk.couchdb.protocol", fmt.Errorf("%q is not http or https", proto))
	}
	host := p.str("whisk.couchdb.host", "")
	if host == "" {
		return c, p.missing("whisk.couchdb.host")
	}
	port := p.str("whisk.couchdb.port", "5984")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return c, p.invalid("whisk.couchdb.port", fmt.Errorf("%q is not a port", port))
	}
	c.URL = proto + "://" + net.JoinHostPort(host, port)
	c.Username = p.str("whisk.couchdb.username", "")
	c.Password = p.str("whisk.couchdb.password", "")
	if provider := p.str("whisk.couchdb.provider", "CouchDB"); provider != "CouchDB" {
		return c, p.invalid("whisk.couchdb.provider", fmt.Errorf("%q is not supported (only CouchDB)", provider))
	}
	for _, db := range []struct {
		dst      *string
		prop     string
		required bool
	}{
		{&c.EntityDB, "whisk.couchdb.databases.WhiskEntity", true},
		{&c.ActivationDB, "whisk.couchdb.databases.WhiskActivation", true},
		{&c.AuthDB, "whisk.couchdb.databases.WhiskAuth", false},
	} {
		*db.dst = p.str(db.prop, "")
		if *db.dst == "" && db.required {
			return c, p.missing(db.prop)
		}
	}
	return c, nil
}

func limitSettings(p props) (Limits, error) {
	var l Limits
	sizes := []struct {
		dst  *int64
		prop string
		def  string
	}{
		{&l.MinMemory, "whisk.memory.min", "128m"}, {&l.MaxMemory, "whisk.memory.max", "512m"}, {&l.StdMemory, "whisk.memory.std", "256m"},
		{&l.MinLogs, "whisk.log-limit.min", "0m"}, {&l.MaxLogs, "whisk.log-limit.max", "10m"}, {&l.StdLogs, "whisk.log-limit.std", "10m"},
		{&l.PayloadMax, "whisk.activation.payload.max", "1048576"},
	}
	for _, s := range sizes {
		v, err := p.size(s.prop, s.def)
		if err != nil {
			return l, err
		}
		*s.dst = v
	}
	durs := []struct {
		dst  *time.Duration
		prop string
		def  string
	}{
		{&l.MinTime, "whisk.time-limit.min", "100ms"}, {&l.MaxTime, "whisk.time-limit.max", "5m"}, {&l.StdTime, "whisk.time-limit.std", "1m"},
	}
	for _, d := range durs {
		v, err := p.duration(d.prop, d.def)
		if err != nil {
			return l, err
		}
		*d.dst = v
	}
	ints := []struct {
		dst  *int
		prop string
		def  int
	}{
		{&l.MinConcurrency, "whisk.concurrency-limit.min", 1}, {&l.MaxConcurrency, "whisk.concurrency-limit.max", 1}, {&l.StdConcurrency, "whisk.concurrency-limit.std", 1},
	}
	for _, i := range ints {
		v, err := p.int(i.prop, i.def)
		if err != nil {
			return l, err
		}
		*i.dst = v
	}
	checks := []struct {
		ok   bool
		prop string
		what string
	}{
		{l.MinMemory > 0 && l.MinMemory <= l.StdMemory && l.StdMemory <= l.MaxMemory, "whisk.memory.std", "memory limits need 0 < min <= std <= max"},
		{l.MinTime > 0 && l.MinTime <= l.StdTime && l.StdTime <= l.MaxTime, "whisk.time-limit.std", "time limits need 0 < min <= std <= max"},
		{l.MinLogs <= l.StdLogs && l.StdLogs <= l.MaxLogs, "whisk.log-limit.std", "log limits need min <= std <= max"},
		{l.MinConcurrency > 0 && l.MinConcurrency <= l.StdConcurrency && l.StdConcurrency <= l.MaxConcurrency, "whisk.concurrency-limit.std", "concurrency limits need 0 < min <= std <= max"},
		{l.PayloadMax > 0, "whisk.activation.payload.max", "must be positive"},
	}
	for _, c := range checks {
		if !c.ok {
			return l, p.invalid(c.prop, errors.New(c.what))
		}
	}
	return l, nil
}

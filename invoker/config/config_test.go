package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// base is the smallest environment an invoker starts with.
func base(extra ...string) []string {
	return append([]string{
		"KAFKA_HOSTS=kafka-0:9092, kafka-1:9092",
		`RUNTIMES_MANIFEST={"runtimes":{}}`,
		"WHISK_API_HOST_NAME=nginx.ow.svc",
		"CONFIG_whisk_couchdb_host=couchdb",
		"CONFIG_whisk_couchdb_databases_WhiskEntity=test_whisks",
		"CONFIG_whisk_couchdb_databases_WhiskActivation=test_activations",
	}, extra...)
}

func without(env []string, key string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, key+"=") {
			out = append(out, kv)
		}
	}
	return out
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(base(), []string{"--id", "3"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"kafka", strings.Join(c.KafkaHosts, ","), "kafka-0:9092,kafka-1:9092"},
		{"id", c.Identity.ID, 3},
		{"port", c.Port, 8080},
		{"apihost", c.APIHost, "https://nginx.ow.svc:443"},
		{"usermemory", c.UserMemory, int64(1024 << 20)},
		{"couch", c.CouchDB.URL, "http://couchdb:5984"},
		{"entity", c.CouchDB.EntityDB, "test_whisks"},
		{"admin", c.AdminUser + ":" + c.AdminPassword, "invoker.user:invoker.pass"},
		{"minmem", c.Limits.MinMemory, int64(128 << 20)},
		{"maxtime", c.Limits.MaxTime, 5 * time.Minute},
		{"stdlogs", c.Limits.StdLogs, int64(10 << 20)},
		{"payload", c.Limits.PayloadMax, int64(1048576)},
		{"maxpeek", c.MaxPeek(), 8},
		{"store", c.StoreBlockingResultLevel, "STORE_ALWAYS"},
		{"cache", c.Snap.SnapshotCacheSize, int64(2 << 30)},
		{"events", c.UserEvents, false},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadUpstreamSettings(t *testing.T) {
	env := base(
		"PORT=9090",
		"ZOOKEEPER_HOSTS=zk-0:2181",
		"WHISK_API_HOST_PROTO=http", "WHISK_API_HOST_PORT=80",
		"CONFIG_whisk_containerPool_userMemory=2048m",
		"CONFIG_whisk_couchdb_protocol=https", "CONFIG_whisk_couchdb_port=6984",
		"CONFIG_whisk_couchdb_username=admin", "CONFIG_whisk_couchdb_password=$DB_PASS", "DB_PASS=s3cret",
		"CONFIG_whisk_kafka_topics_prefix=ow-", "CONFIG_whisk_kafka_topics_userEvent_prefix=ue-",
		"CONFIG_whisk_userEvents_enabled=true",
		"CONFIG_whisk_invoker_username=u", "CONFIG_whisk_invoker_password=p",
		"CONFIG_whisk_memory_min=64m", "CONFIG_whisk_memory_std=128 MiB", "CONFIG_whisk_memory_max=1g",
		"CONFIG_whisk_timeLimit_min=50ms", "CONFIG_whisk_timeLimit_std=30s", "CONFIG_whisk_timeLimit_max=10 minutes",
		"CONFIG_whisk_logLimit_max=20m",
		"CONFIG_whisk_concurrencyLimit_max=200",
		"CONFIG_whisk_activation_payload_max=2097152",
		"CONFIG_whisk_activation_storeBlockingResultLevel=STORE_FAILURES",
		"INVOKER_OPTS=-Dwhisk.spi.ContainerFactoryProvider=org.apache.openwhisk.core.containerpool.kubernetes.KubernetesContainerFactoryProvider -Dwhisk.container-pool.user-memory=4g",
		"SNAPINVOKER_DRIVERS=python:*=unikernel,container;*=container",
		"SNAPINVOKER_DRIVER_OPTIONS=container.engine=docker; container.docker-network=ow;unikernel.x=1",
	)
	c, err := Load(env, []string{"--uniqueName", "owdev-invoker-0", "--displayedName", "node-a"})
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"port", c.Port, 9090},
		{"apihost", c.APIHost, "http://nginx.ow.svc:80"},
		// CONFIG_ wins over INVOKER_OPTS, as transformEnvironment.sh appends it later.
		{"usermemory", c.UserMemory, int64(2048 << 20)},
		{"couch", c.CouchDB.URL, "https://couchdb:6984"},
		{"couchpass", c.CouchDB.Password, "s3cret"},
		{"prefix", c.Kafka.TopicPrefix, "ow-"},
		{"ueprefix", c.Kafka.UserEventPrefix, "ue-"},
		{"events", c.UserEvents, true},
		{"admin", c.AdminUser + ":" + c.AdminPassword, "u:p"},
		{"minmem", c.Limits.MinMemory, int64(64 << 20)},
		{"stdmem", c.Limits.StdMemory, int64(128 << 20)},
		{"mintime", c.Limits.MinTime, 50 * time.Millisecond},
		{"maxtime", c.Limits.MaxTime, 10 * time.Minute},
		{"maxlogs", c.Limits.MaxLogs, int64(20 << 20)},
		{"maxconc", c.Limits.MaxConcurrency, 200},
		{"payload", c.Limits.PayloadMax, int64(2 << 20)},
		{"store", c.StoreBlockingResultLevel, "STORE_FAILURES"},
		{"factory", c.ContainerFactory, "org.apache.openwhisk.core.containerpool.kubernetes.KubernetesContainerFactoryProvider"},
		{"unique", c.Identity.UniqueName, "owdev-invoker-0"},
		{"hasid", c.Identity.HasID, false},
		{"displayed", c.Identity.DisplayedName, "node-a"},
		{"zk", strings.Join(c.ZooKeeperHosts, ","), "zk-0:2181"},
		// 2048m / 64m = 32 containers; 32 × 200 × 0.5 = 3200.
		{"maxpeek", c.MaxPeek(), 3200},
		{"python", strings.Join(c.Snap.DriversFor("python:3.11"), ","), "unikernel,container"},
		{"nodejs", strings.Join(c.Snap.DriversFor("nodejs:20"), ","), "container"},
		{"engine", c.Snap.DriverOptions["container"]["engine"], "docker"},
		{"network", c.Snap.DriverOptions["container"]["docker-network"], "ow"},
		{"uniopt", c.Snap.DriverOptions["unikernel"]["x"], "1"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	id := []string{"--id", "0"}
	cases := []struct {
		name    string
		env     []string
		args    []string
		setting string
		want    error
	}{
		{"no kafka", without(base(), "KAFKA_HOSTS"), id, "KAFKA_HOSTS", ErrMissing},
		{"bad kafka", base("KAFKA_HOSTS=kafka"), id, "KAFKA_HOSTS", ErrInvalid},
		{"no manifest", without(base(), "RUNTIMES_MANIFEST"), id, "RUNTIMES_MANIFEST", ErrMissing},
		{"no api host", without(base(), "WHISK_API_HOST_NAME"), id, "WHISK_API_HOST_NAME", ErrMissing},
		{"bad port", base("PORT=http"), id, "PORT", ErrInvalid},
		{"no id", base(), nil, "--id or --uniqueName", ErrMissing},
		{"bad id", base(), []string{"--id", "-1"}, "--id", ErrInvalid},
		{"unknown flag", base(), []string{"--id", "0", "--bogus"}, "command line", ErrInvalid},
		{"unique without zk", base(), []string{"--uniqueName", "a"}, "ZOOKEEPER_HOSTS", ErrMissing},
		{"no couch host", without(base(), "CONFIG_whisk_couchdb_host"), id, "CONFIG_whisk_couchdb_host", ErrMissing},
		{"no entity db", without(base(), "CONFIG_whisk_couchdb_databases_WhiskEntity"), id, "CONFIG_whisk_couchdb_databases_WhiskEntity", ErrMissing},
		{"no activation db", without(base(), "CONFIG_whisk_couchdb_databases_WhiskActivation"), id, "CONFIG_whisk_couchdb_databases_WhiskActivation", ErrMissing},
		{"bad memory unit", base("CONFIG_whisk_containerPool_userMemory=2048 parsecs"), id, "CONFIG_whisk_containerPool_userMemory", ErrInvalid},
		{"memory below min", base("CONFIG_whisk_containerPool_userMemory=64m"), id, "CONFIG_whisk_containerPool_userMemory", ErrInvalid},
		{"bad memory in opts", base("INVOKER_OPTS=-Dwhisk.container-pool.user-memory=lots"), id, "-Dwhisk.container-pool.user-memory in INVOKER_OPTS", ErrInvalid},
		{"bad bool", base("CONFIG_whisk_userEvents_enabled=maybe"), id, "CONFIG_whisk_userEvents_enabled", ErrInvalid},
		{"bad time", base("CONFIG_whisk_timeLimit_max=forever"), id, "CONFIG_whisk_timeLimit_max", ErrInvalid},
		{"inverted limits", base("CONFIG_whisk_memory_min=1g"), id, "CONFIG_whisk_memory_std", ErrInvalid},
		{"bad store level", base("CONFIG_whisk_activation_storeNonBlockingResultLevel=SOMETIMES"), id, "CONFIG_whisk_activation_storeNonBlockingResultLevel", ErrInvalid},
		{"bad drivers", base("SNAPINVOKER_DRIVERS=python:*"), id, "SNAPINVOKER_DRIVERS", ErrInvalid},
		{"bad driver name", base(), []string{"--id", "0", "--drivers", "*=Uni Kernel"}, "SNAPINVOKER_DRIVERS", ErrInvalid},
		{"bad driver option", base("SNAPINVOKER_DRIVER_OPTIONS=engine=docker"), id, "SNAPINVOKER_DRIVER_OPTIONS", ErrInvalid},
		{"bad cache size", base(), []string{"--id", "0", "--snapshot-cache-size", "big"}, "SNAPINVOKER_SNAPSHOT_CACHE_SIZE", ErrInvalid},
		{"bad couch provider", base("CONFIG_whisk_couchdb_provider=Cloudant"), id, "CONFIG_whisk_couchdb_provider", ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(tc.env, tc.args)
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if ce.Setting != tc.setting || !errors.Is(err, tc.want) {
				t.Fatalf("err = %v (setting %q), want setting %q wrapping %v", err, ce.Setting, tc.setting, tc.want)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	cases := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"2048m", 2048 << 20, true}, {"256 MB", 256_000_000, true}, {"1048576", 1048576, true},
		{"0m", 0, true}, {"1g", 1 << 30, true}, {"1.5 GiB", 3 << 29, true}, {"10 K", 10240, true},
		{"2147483648 B", 2147483648, true}, {"4 kB", 4000, true},
		{"", 0, false}, {"m", 0, false}, {"-1m", 0, false}, {"12 mb", 0, false}, {"1 parsec", 0, false},
		{"99999999999999999999", 0, false}, {"9999999999 TiB", 0, false},
	}
	for _, c := range cases {
		got, err := ParseSize(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestParseDuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"100ms", 100 * time.Millisecond, true}, {"5m", 5 * time.Minute, true}, {"2 minutes", 2 * time.Minute, true},
		{"60000", time.Minute, true}, {"1.5s", 1500 * time.Millisecond, true}, {"10 seconds", 10 * time.Second, true},
		{"", 0, false}, {"soon", 0, false}, {"5 fortnights", 0, false}, {"-1s", 0, false},
	}
	for _, c := range cases {
		got, err := ParseDuration(c.in)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestPropertyName(t *testing.T) {
	cases := map[string]string{
		"whisk_containerPool_userMemory":           "whisk.container-pool.user-memory",
		"whisk_couchdb_databases_WhiskEntity":      "whisk.couchdb.databases.WhiskEntity",
		"whisk_kafka_topics_userEvent_prefix":      "whisk.kafka.topics.user-event.prefix",
		"whisk_spi_ContainerFactoryProvider":       "whisk.spi.ContainerFactoryProvider",
		"whisk_activation_payload_max":             "whisk.activation.payload.max",
		"whisk_containerProxy_timeouts_pauseGrace": "whisk.container-proxy.timeouts.pause-grace",
	}
	for in, want := range cases {
		if got := PropertyName(in); got != want {
			t.Errorf("PropertyName(%q) = %q, want %q", in, got, want)
		}
		if got := envName(want); got != "CONFIG_"+in {
			t.Errorf("envName(%q) = %q, want CONFIG_%s", want, got, in)
		}
	}
}

func FuzzLoad(f *testing.F) {
	f.Add("CONFIG_whisk_memory_min", "128m", "--id")
	f.Add("INVOKER_OPTS", "-Dwhisk.memory.max=1g", "--uniqueName")
	f.Fuzz(func(t *testing.T, k, v, flag string) {
		_, err := Load(base(k+"="+v), []string{flag, v})
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("untyped error %v", err)
			}
		}
	})
}

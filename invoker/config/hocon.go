package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// The upstream invoker reads its settings through Typesafe Config, so sizes and durations are
// written the HOCON way: "2048m", "256 MB", "1048576", "5m", "100ms", "2 minutes". These two
// parsers accept exactly the HOCON unit names, with HOCON's meaning (decimal "MB", binary "m").

var sizeUnits = map[string]int64{
	"": 1, "b": 1, "B": 1, "byte": 1, "bytes": 1,
	"kB": 1000, "kilobyte": 1000, "kilobytes": 1000,
	"K": 1 << 10, "k": 1 << 10, "Ki": 1 << 10, "KiB": 1 << 10, "kibibyte": 1 << 10, "kibibytes": 1 << 10,
	"MB": 1000 * 1000, "megabyte": 1000 * 1000, "megabytes": 1000 * 1000,
	"M": 1 << 20, "m": 1 << 20, "Mi": 1 << 20, "MiB": 1 << 20, "mebibyte": 1 << 20, "mebibytes": 1 << 20,
	"GB": 1000 * 1000 * 1000, "gigabyte": 1000 * 1000 * 1000, "gigabytes": 1000 * 1000 * 1000,
	"G": 1 << 30, "g": 1 << 30, "Gi": 1 << 30, "GiB": 1 << 30, "gibibyte": 1 << 30, "gibibytes": 1 << 30,
	"TB": 1000 * 1000 * 1000 * 1000, "terabyte": 1000 * 1000 * 1000 * 1000, "terabytes": 1000 * 1000 * 1000 * 1000,
	"T": 1 << 40, "t": 1 << 40, "Ti": 1 << 40, "TiB": 1 << 40, "tebibyte": 1 << 40, "tebibytes": 1 << 40,
}

var durationUnits = map[string]time.Duration{
	"":   time.Millisecond, // HOCON: a bare number is milliseconds
	"ns": time.Nanosecond, "nano": time.Nanosecond, "nanos": time.Nanosecond, "nanosecond": time.Nanosecond, "nanoseconds": time.Nanosecond,
	"us": time.Microsecond, "micro": time.Microsecond, "micros": time.Microsecond, "microsecond": time.Microsecond, "microseconds": time.Microsecond,
	"ms": time.Millisecond, "milli": time.Millisecond, "millis": time.Millisecond, "millisecond": time.Millisecond, "milliseconds": time.Millisecond,
	"s": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
}

// splitNumber splits "256 MB" into "256" and "MB".
func splitNumber(s string) (num, unit string) {
	s = strings.TrimSpace(s)
	i := strings.IndexFunc(s, func(r rune) bool { return !(unicode.IsDigit(r) || r == '.' || r == '-' || r == '+') })
	if i < 0 {
		return s, ""
	}
	return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i:])
}

// ParseSize parses a HOCON memory size into bytes. Fractions are allowed ("1.5g") and rounded
// down to a byte; negative sizes are refused.
func ParseSize(s string) (int64, error) {
	num, unit := splitNumber(s)
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown size unit %q in %q (use B, K, M, G, KiB, MiB, GiB, kB, MB, GB)", unit, s)
	}
	if num == "" {
		return 0, fmt.Errorf("no number in size %q", s)
	}
	if n, err := strconv.ParseInt(num, 10, 64); err == nil {
		if n < 0 {
			return 0, fmt.Errorf("negative size %q", s)
		}
		if n > (1<<62)/mult {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// ParseDuration parses a HOCON duration; a bare number means milliseconds.
func ParseDuration(s string) (time.Duration, error) {
	num, unit := splitNumber(s)
	mult, ok := durationUnits[unit]
	if !ok {
		return 0, fmt.Errorf("unknown duration unit %q in %q (use ms, s, m, h, d or their long names)", unit, s)
	}
	if num == "" {
		return 0, fmt.Errorf("no number in duration %q", s)
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || f*float64(mult) > float64(1<<62) {
		return 0, fmt.Errorf("bad duration %q", s)
	}
	return time.Duration(f * float64(mult)), nil
}

// PropertyName turns an upstream CONFIG_ environment variable name (without the CONFIG_ prefix)
// into the property it sets, as the upstream image's transformEnvironment.sh does: "_" separates
// segments; a segment starting lower-case turns from camelCase into kebab-case; a segment
// starting upper-case (PascalCase, e.g. WhiskEntity) is kept as it is.
//
//	whisk_containerPool_userMemory -> whisk.container-pool.user-memory
//	whisk_couchdb_databases_WhiskEntity -> whisk.couchdb.databases.WhiskEntity
func PropertyName(env string) string {
	segs := strings.Split(env, "_")
	for i, s := range segs {
		if s == "" || unicode.IsUpper(rune(s[0])) {
			continue
		}
		var b strings.Builder
		for _, r := range s {
			if unicode.IsUpper(r) {
				b.WriteByte('-')
				b.WriteRune(unicode.ToLower(r))
				continue
			}
			b.WriteRune(r)
		}
		segs[i] = b.String()
	}
	return strings.Join(segs, ".")
}

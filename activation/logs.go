package activation

import (
	"fmt"
	"strings"
	"time"
)

// Lines the invoker appends to an activation's logs (Messages.truncateLogs, logFailure,
// logWarningDeveloperError). They are written on stderr with a Java Instant timestamp.
const (
	MsgLogCollectionFailed = "There was an issue while collecting your logs. Data might be missing."
	MsgLogDeveloperError   = "The action did not initialize or run as expected. Log data might be missing."
)

// MsgLogsTruncated is the line appended when the logs exceed the action's limit.
func MsgLogsTruncated(limitBytes int64) string {
	return fmt.Sprintf("Logs were truncated because the total bytes size exceeds the limit of %d bytes.", limitBytes)
}

// DockerTime formats t the way Docker's json-file driver does: RFC 3339 in UTC with up to
// nine fractional digits, trailing zeros trimmed.
func DockerTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// InstantString formats t as Java's Instant.toString: UTC, seconds always present, and the
// fraction in groups of three digits (none, milli, micro or nano) as needed.
func InstantString(t time.Time) string {
	t = t.UTC()
	base := t.Format("2006-01-02T15:04:05")
	ns := t.Nanosecond()
	switch {
	case ns == 0:
		return base + "Z"
	case ns%1_000_000 == 0:
		return fmt.Sprintf("%s.%03dZ", base, ns/1_000_000)
	case ns%1_000 == 0:
		return fmt.Sprintf("%s.%06dZ", base, ns/1_000)
	}
	return fmt.Sprintf("%s.%09dZ", base, ns)
}

// FormatLogLine is one entry of an activation's logs: the time padded on the right to 30
// characters, a space, the stream, ": " and the text ("%-30s %s: %s"). Lines the action
// wrote carry Docker's time format.
func FormatLogLine(l LogLine) string {
	return fmt.Sprintf("%-30s %s: %s", DockerTime(l.Time), l.Stream, l.Text)
}

// InvokerLogLine is a line the invoker appends itself: stderr, Java Instant timestamp.
func InvokerLogLine(t time.Time, text string) string {
	return fmt.Sprintf("%-30s %s: %s", InstantString(t), "stderr", text)
}

// LogCollector gathers one activation's log lines under the action's limit. The weight of a
// line is the byte length of its text; the first line that would take the total above the
// limit is dropped with every later one, and a truncation notice is appended. It is pure:
// the caller supplies lines and the time of the appended notices.
type LogCollector struct {
	limit     int64
	used      int64
	lines     []string
	truncated bool
}

// NewLogCollector starts a collection limited to limitBytes (limits.logs MB × 1 MiB).
func NewLogCollector(limitBytes int64) *LogCollector { return &LogCollector{limit: limitBytes} }

// Add takes one line; it returns false once the limit has been reached (stop reading).
func (c *LogCollector) Add(l LogLine) bool {
	if c.truncated {
		return false
	}
	w := int64(len(l.Text))
	if c.used+w > c.limit {
		c.truncated = true
		return false
	}
	c.used += w
	c.lines = append(c.lines, FormatLogLine(l))
	return true
}

// Truncated reports whether lines were dropped.
func (c *LogCollector) Truncated() bool { return c.truncated }

// LogOutcome is how the collection ended.
type LogOutcome struct {
	// CollectionFailed: the sentinels did not arrive or reading failed (idle or overall timeout).
	CollectionFailed bool
	// DeveloperError: the activation's response is a developer error (status 2).
	DeveloperError bool
}

// Finish returns the formatted logs: the collected lines, then the truncation notice or the
// collection-failure notice, then the developer-error warning, each stamped with now.
// Errored reports a truncation or collection failure, after which the container is destroyed.
func (c *LogCollector) Finish(now time.Time, o LogOutcome) (logs []string, errored bool) {
	logs = append([]string(nil), c.lines...)
	switch {
	case c.truncated:
		logs = append(logs, InvokerLogLine(now, MsgLogsTruncated(c.limit)))
		errored = true
	case o.CollectionFailed:
		logs = append(logs, InvokerLogLine(now, MsgLogCollectionFailed))
		errored = true
	}
	if o.DeveloperError {
		logs = append(logs, InvokerLogLine(now, MsgLogDeveloperError))
	}
	if logs == nil {
		logs = []string{}
	}
	return logs, errored
}

// ParseLogLine splits a formatted line back into time text, stream and text (for the REST
// API's logs view and tests). ok is false if the line does not have the format.
func ParseLogLine(s string) (timeText, stream, text string, ok bool) {
	if len(s) < 32 {
		return "", "", "", false
	}
	timeText = strings.TrimRight(s[:30], " ")
	rest := s[31:]
	stream, text, ok = strings.Cut(rest, ": ")
	return timeText, stream, text, ok
}

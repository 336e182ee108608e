package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// props are Typesafe Config properties as the upstream image sets them: -Dname=value words of
// INVOKER_OPTS first, then every CONFIG_* variable (transformEnvironment.sh appends those after
// INVOKER_OPTS, so they win). Each value remembers where it came from, for error messages.
type props map[string]propValue

type propValue struct {
	value, source string
}

func newProps(env map[string]string) props {
	p := props{}
	for _, word := range strings.Fields(env["INVOKER_OPTS"]) {
		word = strings.Trim(word, `"'`)
		kv, ok := strings.CutPrefix(word, "-D")
		if !ok {
			continue
		}
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			p[k] = propValue{strings.Trim(v, `"'`), "-D" + k + " in INVOKER_OPTS"}
		}
	}
	for k, v := range env {
		name, ok := strings.CutPrefix(k, "CONFIG_")
		if !ok || name == "" {
			continue
		}
		// transformEnvironment.sh: a value starting with $ names another variable.
		if ref, ok := strings.CutPrefix(v, "$"); ok {
			v = env[ref]
		}
		p[PropertyName(name)] = propValue{v, k}
	}
	return p
}

// envName is the CONFIG_ variable that sets prop, for messages about unset properties.
func envName(prop string) string {
	segs := strings.Split(prop, ".")
	for i, s := range segs {
		parts := strings.Split(s, "-")
		for j := 1; j < len(parts); j++ {
			if parts[j] != "" {
				parts[j] = strings.ToUpper(parts[j][:1]) + parts[j][1:]
			}
		}
		segs[i] = strings.Join(parts, "")
	}
	return "CONFIG_" + strings.Join(segs, "_")
}

func (p props) source(prop string) string {
	if v, ok := p[prop]; ok {
		return v.source
	}
	return envName(prop)
}

func (p props) missing(prop string) error { return &Error{envName(prop), ErrMissing} }

func (p props) invalid(prop string, err error) error {
	return &Error{p.source(prop), fmt.Errorf("%w: %v", ErrInvalid, err)}
}

func (p props) str(prop, def string) string {
	if v, ok := p[prop]; ok && strings.TrimSpace(v.value) != "" {
		return strings.TrimSpace(v.value)
	}
	return def
}

func (p props) size(prop, def string) (int64, error) {
	n, err := ParseSize(p.str(prop, def))
	if err != nil {
		return 0, p.invalid(prop, err)
	}
	return n, nil
}

func (p props) duration(prop, def string) (time.Duration, error) {
	d, err := ParseDuration(p.str(prop, def))
	if err != nil {
		return 0, p.invalid(prop, err)
	}
	return d, nil
}

func (p props) int(prop string, def int) (int, error) {
	s := p.str(prop, strconv.Itoa(def))
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, p.invalid(prop, fmt.Errorf("%q is not an integer", s))
	}
	return n, nil
}

func (p props) float(prop string, def float64) (float64, error) {
	s := p.str(prop, strconv.FormatFloat(def, 'g', -1, 64))
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 {
		return 0, p.invalid(prop, fmt.Errorf("%q is not a non-negative number", s))
	}
	return f, nil
}

func (p props) bool(prop string, def bool) (bool, error) {
	s := p.str(prop, strconv.FormatBool(def))
	switch strings.ToLower(s) {
	case "true", "yes", "on":
		return true, nil
	case "false", "no", "off":
		return false, nil
	}
	return false, p.invalid(prop, fmt.Errorf("%q is not true or false", s))
}

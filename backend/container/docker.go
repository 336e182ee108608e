package container

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/backend"
)

// Texts of upstream's container-creation failures (protocol spec §6 "Container creation").
const (
	textProvisionFailed = "Failed to provision resources to run the action."
	textPullFailed      = "Failed to pull container image '%s'."
	textExecNotFound    = "executable file not found in image %s"
)

type dockerOptions struct {
	host        string            // unix:///var/run/docker.sock or tcp://host:port
	network     string            // whisk.container-factory.container-args.network
	namePrefix  string            // wsk{uniqueName}{id}_
	images      map[string]string // kind → image, from the runtimes manifest
	apiHost     string            // __OW_API_HOST
	runtimePort int               // 8080 in every runtime image
	userMemory  int64
	cpus        float64
}

func defaultDockerOptions() dockerOptions {
	return dockerOptions{host: "unix:///var/run/docker.sock", network: "bridge", namePrefix: "wsk0_", images: map[string]string{}, runtimePort: 8080}
}

// dockerAPI is a small Docker Engine API client (v1.41 paths, unversioned).
type dockerAPI struct {
	hc   *http.Client
	base string
}

func newDockerAPI(host string) *dockerAPI {
	tr := &http.Transport{}
	base := "http://docker"
	switch {
	case strings.HasPrefix(host, "unix://"):
		path := strings.TrimPrefix(host, "unix://")
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", path) }
	case strings.HasPrefix(host, "tcp://"):
		base = "http://" + strings.TrimPrefix(host, "tcp://")
	default:
		base = strings.TrimSuffix(host, "/")
	}
	return &dockerAPI{hc: &http.Client{Transport: tr}, base: base}
}

type dockerError struct {
	status int
	msg    string
}

func (e *dockerError) Error() string { return fmt.Sprintf("docker API %d: %s", e.status, e.msg) }

// do sends one request; out (if not nil) receives the decoded JSON answer.
func (a *dockerAPI) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var m struct{ Message string }
		json.Unmarshal(data, &m)
		if m.Message == "" {
			m.Message = strings.TrimSpace(string(data))
		}
		return &dockerError{status: resp.StatusCode, msg: m.Message}
	}
	if out != nil && len(data) > 0 {
		return json.Unmarshal(data, out)
	}
	return nil
}

func (a *dockerAPI) ping(ctx context.Context) error {
	if err := a.do(ctx, http.MethodGet, "/_ping", nil, nil); err != nil {
		return fmt.Errorf("container: docker engine at %s: %w", a.base, err)
	}
	return nil
}

type dockerEngine struct {
	api *dockerAPI
	o   dockerOptions
	log *zap.Logger
	seq atomic.Int64
}

func newDockerEngine(ctx context.Context, o dockerOptions, log *zap.Logger) (*dockerEngine, error) {
	e := &dockerEngine{api: newDockerAPI(o.host), o: o, log: log}
	if err := e.cleanup(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// cleanup removes every container named <prefix>* (upstream: wsk{uniqueName}{id}_*).
func (e *dockerEngine) cleanup(ctx context.Context) error {
	filters, _ := json.Marshal(map[string][]string{"name": {e.o.namePrefix}})
	var list []struct {
		ID    string `json:"Id"`
		Names []string
	}
	if err := e.api.do(ctx, http.MethodGet, "/containers/json?all=1&filters="+url.QueryEscape(string(filters)), nil, &list); err != nil {
		return fmt.Errorf("container: docker: listing leftovers: %w", err)
	}
	for _, c := range list {
		for _, n := range c.Names {
			if strings.HasPrefix(strings.TrimPrefix(n, "/"), e.o.namePrefix) {
				if err := e.api.do(ctx, http.MethodDelete, "/containers/"+c.ID+"?force=1", nil, nil); err != nil {
					e.log.Warn("removing a leftover container failed", zap.String("container", n), zap.Error(err))
				}
				break
			}
		}
	}
	return nil
}

// containerName is upstream's wsk{uniqueName}{id}_{counter}_{namespace|prewarm}_{action|kind},
// restricted to the characters Docker accepts.
func (e *dockerEngine) containerName(spec backend.StartSpec) string {
	n := e.seq.Add(1)
	clean := func(s string) string {
		return strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
				return r
			}
			return '_'
		}, s)
	}
	if spec.Action == nil {
		return fmt.Sprintf("%s%d_prewarm_%s", e.o.namePrefix, n, clean(spec.Kind))
	}
	name := spec.Action.Name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	return fmt.Sprintf("%s%d_%s_%s", e.o.namePrefix, n, clean(spec.Action.Namespace), clean(name))
}

// createBody is `docker run` of upstream as an API body: --cpu-shares, --memory, --memory-swap,
// --network, -e __OW_API_HOST, --cap-drop NET_RAW NET_ADMIN, --ulimit nofile=1024:1024,
// --pids-limit 1024, --log-driver json-file [, --cpus].
func (e *dockerEngine) createBody(image string, memory int64) map[string]any {
	pids := int64(upstreamPidsLimit)
	host := map[string]any{
		"CpuShares":   cpuShares(e.o.userMemory, memory),
		"Memory":      memory,
		"MemorySwap":  memory,
		"NetworkMode": e.o.network,
		"CapDrop":     []string{"NET_RAW", "NET_ADMIN"},
		"Ulimits":     []map[string]any{{"Name": "nofile", "Soft": upstreamNofile, "Hard": upstreamNofile}},
		"PidsLimit":   pids,
		"LogConfig":   map[string]any{"Type": "json-file", "Config": map[string]string{}},
	}
	if e.o.cpus > 0 {
		host["NanoCpus"] = int64(e.o.cpus * 1e9)
	}
	env := []string{}
	if e.o.apiHost != "" {
		env = append(env, "__OW_API_HOST="+e.o.apiHost)
	}
	return map[string]any{"Image": image, "Env": env, "HostConfig": host}
}

func splitImage(image string) (repo, tag string) {
	slash := strings.LastIndexByte(image, '/')
	if i := strings.LastIndexByte(image, ':'); i > slash {
		return image[:i], image[i+1:]
	}
	return image, ""
}

func (e *dockerEngine) start(ctx context.Context, spec backend.StartSpec) (handle, error) {
	image := e.o.images[spec.Kind]
	native := true
	if spec.Kind == "blackbox" && spec.Action != nil && spec.Action.Image != "" {
		image, native = spec.Action.Image, spec.Action.Native
	}
	if image == "" {
		return nil, fmt.Errorf("container: docker: no image for kind %q (option image.%s): %w", spec.Kind, spec.Kind, backend.ErrUnsupported)
	}
	if !native {
		repo, tag := splitImage(image)
		q := url.Values{"fromImage": {repo}}
		if tag != "" {
			q.Set("tag", tag)
		}
		if err := e.api.do(ctx, http.MethodPost, "/images/create?"+q.Encode(), nil, nil); err != nil {
			if tag == "" || tag == "latest" {
				return nil, fmt.Errorf("container: docker pull: %v: %w: "+textPullFailed, err, backend.ErrActionFailed, image)
			}
			e.log.Warn("image pull failed; trying to run the local image", zap.String("image", image), zap.Error(err))
		}
	}
	name := e.containerName(spec)
	var created struct {
		ID string `json:"Id"`
	}
	if err := e.api.do(ctx, http.MethodPost, "/containers/create?name="+url.QueryEscape(name), e.createBody(image, spec.Memory), &created); err != nil {
		return nil, fmt.Errorf("container: docker create %s: %v: %w: "+textProvisionFailed, name, err, backend.ErrPlatform)
	}
	c := &dockerContainer{e: e, id: created.ID, name: name, pump: newLogPump(nil), sentinel: native}
	if err := e.api.do(ctx, http.MethodPost, "/containers/"+c.id+"/start", nil, nil); err != nil {
		c.destroy(context.Background())
		if strings.Contains(err.Error(), "executable file not found") {
			return nil, fmt.Errorf("container: docker start: %w: "+textExecNotFound, backend.ErrActionFailed, image)
		}
		return nil, fmt.Errorf("container: docker start %s: %v: %w: "+textProvisionFailed, name, err, backend.ErrPlatform)
	}
	var info dockerInspect
	if err := e.api.do(ctx, http.MethodGet, "/containers/"+c.id+"/json", nil, &info); err != nil {
		c.destroy(context.Background())
		return nil, fmt.Errorf("container: docker inspect %s: %v: %w: "+textProvisionFailed, name, err, backend.ErrPlatform)
	}
	nw, ok := info.NetworkSettings.Networks[e.o.network]
	if !ok || nw.IPAddress == "" {
		c.destroy(context.Background())
		return nil, fmt.Errorf("container: docker inspect %s: no address on network %q: %w: "+textProvisionFailed, name, e.o.network, backend.ErrPlatform)
	}
	c.cli = NewTCPClient(net.JoinHostPort(nw.IPAddress, fmt.Sprint(e.o.runtimePort)))
	// Follow the container's log from its start: lines are attributed per activation by the
	// sentinels, as upstream's json-file tailing does.
	logCtx, cancel := context.WithCancel(context.Background())
	c.stopLogs = cancel
	req, _ := http.NewRequestWithContext(logCtx, http.MethodGet, e.api.base+"/containers/"+c.id+"/logs?follow=1&stdout=1&stderr=1", nil)
	resp, err := e.api.hc.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		if err == nil {
			resp.Body.Close()
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		c.destroy(context.Background())
		return nil, fmt.Errorf("container: docker logs %s: %v: %w: "+textProvisionFailed, name, err, backend.ErrPlatform)
	}
	c.pump.readMultiplexed(resp.Body)
	return c, nil
}

type dockerInspect struct {
	State struct {
		OOMKilled bool
		Running   bool
	}
	NetworkSettings struct {
		Networks map[string]struct{ IPAddress string }
	}
}

type dockerContainer struct {
	e        *dockerEngine
	id, name string
	cli      *Client
	pump     *logPump
	sentinel bool
	stopLogs context.CancelFunc
	once     sync.Once
}

func (c *dockerContainer) ID() string        { return c.name }
func (c *dockerContainer) client() *Client   { return c.cli }
func (c *dockerContainer) logs() *logPump    { return c.pump }
func (c *dockerContainer) sentinelled() bool { return c.sentinel }

func (c *dockerContainer) oomKilled(ctx context.Context) bool {
	var info dockerInspect
	return c.e.api.do(ctx, http.MethodGet, "/containers/"+c.id+"/json", nil, &info) == nil && info.State.OOMKilled
}

func (c *dockerContainer) pause(ctx context.Context) error {
	return c.e.api.do(ctx, http.MethodPost, "/containers/"+c.id+"/pause", nil, nil)
}

func (c *dockerContainer) resume(ctx context.Context) error {
	return c.e.api.do(ctx, http.MethodPost, "/containers/"+c.id+"/unpause", nil, nil)
}

func (c *dockerContainer) memoryUsed() (int64, error) {
	var st struct {
		MemoryStats struct {
			Usage int64 `json:"usage"`
		} `json:"memory_stats"`
	}
	err := c.e.api.do(context.Background(), http.MethodGet, "/containers/"+c.id+"/stats?stream=false", nil, &st)
	return st.MemoryStats.Usage, err
}

func (c *dockerContainer) destroy(ctx context.Context) error {
	var err error
	c.once.Do(func() {
		if c.stopLogs != nil {
			c.stopLogs()
		}
		if e := c.e.api.do(ctx, http.MethodDelete, "/containers/"+c.id+"?force=1", nil, nil); e != nil {
			err = fmt.Errorf("container: docker rm %s: %v: %w", c.name, e, backend.ErrPlatform)
		}
	})
	return err
}

package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"go.uber.org/zap"

	"github.com/snapinvoker/snapinvoker/activation"
	"github.com/snapinvoker/snapinvoker/store"
)

// invokeOutcome is what an invocation produced: an activation, or only its id when the wait
// ran out (or the invoke was non-blocking).
type invokeOutcome struct {
	id         activation.ActivationID
	activation *activation.WhiskActivation
}

func (s *Server) invokeAction(c *gin.Context) {
	name, err := oneEntityName(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ns := namespaceOf(c)
	t := txOf(c)
	blocking := queryBool(c, "blocking")
	resultOnly := queryBool(c, "result")
	wait := s.limits.MaxWait
	if v, ok := c.GetQuery("timeout"); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || time.Duration(n)*time.Millisecond > s.limits.MaxWait {
			s.fail(c, badRequest(msgInvalidTimeout(s.limits.MaxWait.Milliseconds())))
			return
		}
		wait = time.Duration(n) * time.Millisecond
	}
	body, err := readBody(c, s.limits.MaxPayload, "Request")
	if err != nil {
		s.fail(c, err)
		return
	}
	payload, err := parsePayload(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	a, rev, err := s.loadAction(name.docID(ns))
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := checkFinalParams(a, payload); err != nil {
		s.fail(c, err)
		return
	}
	user := identityOf(c)
	var out invokeOutcome
	if a.Exec.Kind == "sequence" {
		out, err = s.invokeSequence(c.Request.Context(), t, user, a, payload, blocking, wait, "", 0)
	} else {
		out, err = s.invokeSimple(c.Request.Context(), t, user, a, rev, payload, blocking, wait, "")
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	s.answerInvoke(c, out, resultOnly)
}

// answerInvoke writes the response of an invoke (spec §1.5 table).
func (s *Server) answerInvoke(c *gin.Context, out invokeOutcome, resultOnly bool) {
	c.Header("x-openwhisk-activation-id", string(out.id))
	if out.activation == nil {
		respond(c, http.StatusAccepted, map[string]string{"activationId": string(out.id)})
		return
	}
	act := out.activation
	status := http.StatusOK
	switch {
	case act.Response.IsApplicationError(), act.Response.IsDeveloperError():
		status = http.StatusBadGateway
	case act.Response.IsWhiskError():
		status = http.StatusInternalServerError
	}
	res := bytes.TrimSpace(act.Response.Result)
	if len(res) > 0 && res[0] == '[' {
		respond(c, status, json.RawMessage(res))
		return
	}
	if resultOnly {
		if len(res) == 0 {
			res = []byte(`{}`)
		}
		respond(c, status, json.RawMessage(res))
		return
	}
	body, err := act.ExtendedJSON()
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	respond(c, status, json.RawMessage(body))
}

// parsePayload reads the invoke body: a JSON object, or nothing (= {}).
func parsePayload(body []byte) (json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return json.RawMessage(`{}`), nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, malformed(jsonDetail(err))
	}
	return json.RawMessage(body), nil
}

// checkFinalParams refuses a payload that overrides a defined parameter of an action
// annotated final (immutableParameters upstream).
func checkFinalParams(a *actionDoc, raw json.RawMessage) error {
	v, ok := a.Annotations.get("final")
	if !ok || !truthy(v) {
		return nil
	}
	var payload map[string]json.RawMessage
	if json.Unmarshal(raw, &payload) != nil {
		return nil
	}
	for _, p := range a.Parameters {
		if _, over := payload[p.Key]; over && !isNull(p.Value) {
			return badRequest(msgParamsNotAllowed)
		}
	}
	return nil
}

func truthy(v json.RawMessage) bool {
	switch string(bytes.TrimSpace(v)) {
	case "", "null", "false", "0", `""`:
		return false
	}
	return true
}

// mergeParams merges the action's parameters under the payload, and names the init and
// encrypted ones the invoker must treat specially. An array payload (a sequence component's
// input) is passed as it is.
func mergeParams(a *actionDoc, raw json.RawMessage) (json.RawMessage, []string, map[string]string) {
	var payload map[string]json.RawMessage
	if t := bytes.TrimSpace(raw); len(t) > 0 && t[0] == '[' {
		return raw, nil, nil
	}
	_ = json.Unmarshal(raw, &payload)
	merged := map[string]json.RawMessage{}
	var initArgs []string
	locked := map[string]string{}
	for _, p := range a.Parameters {
		merged[p.Key] = p.Value
		if p.Init {
			initArgs = append(initArgs, p.Key)
		}
		if len(p.Encryption) > 0 && !isNull(p.Encryption) {
			var scheme string
			if json.Unmarshal(p.Encryption, &scheme) == nil && scheme != "" {
				locked[p.Key] = scheme
			}
		}
	}
	for k, v := range payload {
		merged[k] = v
		delete(locked, k) // the caller's value is plain text
	}
	b, _ := json.Marshal(merged)
	return b, initArgs, locked
}

func wireIdentity(id Identity) activation.Identity {
	key, _ := json.Marshal(id.APIKey())
	return activation.Identity{
		Subject:   id.Subject,
		Namespace: activation.Namespace{Name: id.Namespace, UUID: id.UUID},
		AuthKey:   map[string]json.RawMessage{"api_key": key},
		Rights:    []string{"READ", "PUT", "DELETE", "ACTIVATE"},
	}
}

// invokeSimple publishes one activation of an action and, when blocking, waits for it.
func (s *Server) invokeSimple(ctx context.Context, t tx, user Identity, a *actionDoc, rev string,
	payload json.RawMessage, blocking bool, wait time.Duration, cause activation.ActivationID) (invokeOutcome, error) {
	if s.lb == nil {
		return invokeOutcome{}, newAPIError(http.StatusServiceUnavailable, msgServiceUnavail)
	}
	content, initArgs, locked := mergeParams(a, payload)
	ver, err := activation.ParseSemVer(a.Version)
	if err != nil {
		ver = activation.DefaultVersion
	}
	msg := &activation.ActivationMessage{
		TransID:             activation.NewTransactionID(t.ID, t.Start.UnixMilli()),
		Action:              activation.FullyQualifiedEntityName{Path: a.Namespace, Name: a.Name, Version: &ver},
		Revision:            rev,
		User:                wireIdentity(user),
		ActivationID:        activation.NewActivationID(),
		RootControllerIndex: activation.ControllerInstanceID{AsString: "0"},
		Blocking:            blocking,
		Content:             content,
		InitArgs:            initArgs,
		LockedArgs:          locked,
		Cause:               cause,
	}
	log := s.log.With(zap.String("activationId", string(msg.ActivationID)), zap.String("tid", t.ID),
		zap.String("action", a.Namespace+"/"+a.Name))
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	p, err := s.lb.Publish(pctx, msg)
	cancel()
	if err != nil {
		log.Error("publish failed", zap.Error(err))
		if errors.Is(err, errTooLarge) {
			return invokeOutcome{}, newAPIError(http.StatusRequestEntityTooLarge, "Request Entity Too Large")
		}
		return invokeOutcome{}, newAPIError(http.StatusServiceUnavailable, msgServiceUnavail)
	}
	log.Debug("activation published", zap.Bool("blocking", blocking))
	if !blocking {
		p.Done()
		return invokeOutcome{id: msg.ActivationID}, nil
	}
	defer p.Done()
	act, err := s.await(ctx, p, user.Namespace, wait)
	if err != nil {
		return invokeOutcome{}, err
	}
	return invokeOutcome{id: msg.ActivationID, activation: act}, nil
}

// await waits for the activation's result: from a ResultMessage or Combined ack carrying the
// record, otherwise (shrunk ack, or only a Completion) from the activation store, which the
// invoker writes. It returns nil without error when the wait runs out (202 to the client).
func (s *Server) await(ctx context.Context, p *Pending, ns string, wait time.Duration) (*activation.WhiskActivation, error) {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// Polling the store is the fallback when no ack carries the record (upstream polls the
	// activations database too); in-process it is cheap, so it starts soon and backs off.
	poll := 50 * time.Millisecond
	pollTimer := time.NewTimer(time.Second)
	defer pollTimer.Stop()
	completed := false
	for {
		select {
		case ack := <-p.Acks:
			if ack.Response.Activation != nil {
				return ack.Response.Activation, nil
			}
			if ack.FreesSlot() || ack.Kind == activation.ResultAck {
				completed = true
				if a := s.readActivation(ns, p.ID); a != nil {
					return a, nil
				}
				pollTimer.Reset(poll)
			}
		case <-pollTimer.C:
			if a := s.readActivation(ns, p.ID); a != nil {
				return a, nil
			}
			if completed {
				poll = min(poll*2, time.Second)
			} else {
				poll = min(poll*2, 5*time.Second)
			}
			pollTimer.Reset(poll)
		case <-deadline.C:
			return nil, nil
		case <-ctx.Done():
			return nil, nil
		}
	}
}

// readActivation reads a stored activation record, or nil when there is none yet.
func (s *Server) readActivation(ns string, id activation.ActivationID) *activation.WhiskActivation {
	d, err := s.store.Activations.Get(ns + "/" + string(id))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("reading activation failed", zap.String("activationId", string(id)), zap.Error(err))
		}
		return nil
	}
	a, err := activation.DecodeStoredActivation(d.JSON())
	if err != nil {
		s.log.Warn("stored activation unreadable", zap.String("activationId", string(id)), zap.Error(err))
		return nil
	}
	return &a.WhiskActivation
}

// storeActivation writes a record the controller made itself (a sequence's).
func (s *Server) storeActivation(a *activation.WhiskActivation) error {
	doc := a.Stored(s.now().UnixMilli())
	body, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode activation %s: %w", a.ActivationID, err)
	}
	if _, err := s.store.Activations.Put(a.DocID(), "", body); err != nil {
		return fmt.Errorf("store activation %s: %w", a.ActivationID, err)
	}
	return nil
}

package controller

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/snapinvoker/snapinvoker/store"
)

func asErr[T error](err error, target *T) bool { return errors.As(err, target) }

// entityName is a parsed action path: name, or pkg/name.
type entityName struct {
	Package, Name string
}

func (e entityName) String() string {
	if e.Package != "" {
		return e.Package + "/" + e.Name
	}
	return e.Name
}

func (e entityName) docID(ns string) string { return ns + "/" + e.String() }

// parseEntityName reads the *name route parameter ("/hello", "/pkg/hello"). listPkg is true
// for "/pkg/" (list the actions of a package).
func parseEntityName(p string) (name entityName, listPkg bool, err error) {
	p = strings.TrimPrefix(p, "/")
	parts := strings.Split(p, "/")
	switch {
	case len(parts) == 2 && parts[1] == "":
		name = entityName{Package: parts[0]}
		listPkg = true
	case len(parts) == 1:
		name = entityName{Name: parts[0]}
	case len(parts) == 2:
		name = entityName{Package: parts[0], Name: parts[1]}
	default:
		return name, false, newAPIError(http.StatusNotFound, msgNoRoute)
	}
	for _, seg := range []string{name.Package, name.Name} {
		if seg != "" && (len(seg) > 256 || !entityNamePattern.MatchString(seg)) {
			return name, false, badRequest(msgEntityNameBad)
		}
	}
	if (name.Name == "" && !listPkg) || (listPkg && name.Package == "") || (len(parts) == 2 && name.Package == "") {
		return name, false, badRequest(msgEntityNameBad)
	}
	return name, listPkg, nil
}

// oneEntityName reads the *name route parameter of a route that acts on one action: a package
// listing ("/pkg/") has no such route.
func oneEntityName(c *gin.Context) (entityName, error) {
	name, listPkg, err := parseEntityName(c.Param("name"))
	if err == nil && listPkg {
		err = newAPIError(http.StatusNotFound, msgNoRoute)
	}
	return name, err
}

// loadAction reads an action document; a missing one or one of another collection are the
// API's 404 and 409.
//
// Parsed documents are kept by revision (the current one is checked in memory), so a warm
// invoke does not re-read and re-parse an action with megabytes of code. Callers must not
// modify the returned document.
func (s *Server) loadAction(docID string) (*actionDoc, string, error) {
	if rev, err := s.store.Whisks.Rev(docID); err == nil {
		s.cacheMu.Lock()
		c, ok := s.actionCache[docID]
		s.cacheMu.Unlock()
		if ok && c.rev == rev {
			return c.doc, rev, nil
		}
	}
	d, err := s.store.Whisks.Get(docID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", newAPIError(http.StatusNotFound, msgNotFound)
	}
	if err != nil {
		return nil, "", internal(err)
	}
	var a actionDoc
	if err := json.Unmarshal(d.Body, &a); err != nil {
		return nil, "", internal(fmt.Errorf("action %s unreadable: %w", docID, err))
	}
	if a.EntityType != "" && a.EntityType != "action" {
		return nil, "", newAPIError(http.StatusConflict, msgNotInCollection)
	}
	s.cacheMu.Lock()
	if len(s.actionCache) >= maxCachedActions {
		s.actionCache = map[string]cachedAction{}
	}
	s.actionCache[docID] = cachedAction{rev: d.Rev, doc: &a}
	s.cacheMu.Unlock()
	return &a, d.Rev, nil
}

// cachedAction is a parsed action document at one revision.
type cachedAction struct {
	rev string
	doc *actionDoc
}

// maxCachedActions bounds the parsed-action cache; past it the cache starts over.
const maxCachedActions = 4096

// served is the action as the API returns it.
func served(a actionDoc, withCode bool) actionDoc {
	a.EntityType = ""
	if !withCode {
		a.Exec.Code = nil
	}
	return a
}

func (s *Server) getAction(c *gin.Context) {
	name, listPkg, err := parseEntityName(c.Param("name"))
	if err != nil {
		s.fail(c, err)
		return
	}
	ns := namespaceOf(c)
	if listPkg {
		// Packages are not implemented: a package that does not exist.
		s.fail(c, newAPIError(http.StatusNotFound, msgNotFound))
		return
	}
	a, _, err := s.loadAction(name.docID(ns))
	if err != nil {
		s.fail(c, err)
		return
	}
	withCode := c.Query("code") != "false"
	respond(c, http.StatusOK, served(*a, withCode))
}

func (s *Server) deleteAction(c *gin.Context) {
	name, err := oneEntityName(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	docID := name.docID(namespaceOf(c))
	a, rev, err := s.loadAction(docID)
	if err != nil {
		s.fail(c, err)
		return
	}
	if err := s.store.Whisks.Delete(docID, rev); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.fail(c, newAPIError(http.StatusConflict, msgConflict))
			return
		}
		if errors.Is(err, store.ErrNotFound) {
			s.fail(c, newAPIError(http.StatusNotFound, msgNotFound))
			return
		}
		s.fail(c, internal(err))
		return
	}
	respond(c, http.StatusOK, served(*a, true))
}

// readBody reads at most max bytes; a longer body is 413 with OpenWhisk's size text.
func readBody(c *gin.Context, max int64, field string) ([]byte, error) {
	if c.Request.ContentLength > max {
		return nil, newAPIError(http.StatusRequestEntityTooLarge, msgEntityTooBig(field, c.Request.ContentLength, max))
	}
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, max+1))
	if err != nil {
		return nil, badRequest(msgMalformed + err.Error())
	}
	if int64(len(body)) > max {
		return nil, newAPIError(http.StatusRequestEntityTooLarge, msgEntityTooBig(field, int64(len(body)), max))
	}
	return body, nil
}

func (s *Server) putAction(c *gin.Context) {
	name, err := oneEntityName(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	ns := namespaceOf(c)
	if name.Package != "" {
		// Packages are not implemented, so the package named here does not exist.
		s.fail(c, newAPIError(http.StatusNotFound, msgNotFound))
		return
	}
	body, err := readBody(c, s.limits.MaxCodeSize, "Request")
	if err != nil {
		s.fail(c, err)
		return
	}
	put, err := s.parsePut(body)
	if err != nil {
		s.fail(c, err)
		return
	}
	overwrite := queryBool(c, "overwrite")
	docID := name.docID(ns)
	old, rev, err := s.loadAction(docID)
	var ae *apiError
	switch {
	case err == nil && !overwrite:
		s.fail(c, newAPIError(http.StatusConflict, msgExists))
		return
	case err != nil && !(errors.As(err, &ae) && ae.status == http.StatusNotFound):
		s.fail(c, err)
		return
	}
	var doc actionDoc
	if old == nil {
		if put.Exec == nil {
			s.fail(c, badRequest("exec undefined"))
			return
		}
		doc, err = s.makeAction(ns, name, put)
	} else {
		doc, err = s.updateAction(ns, name, *old, put)
	}
	if err != nil {
		s.fail(c, err)
		return
	}
	doc.EntityType = "action"
	doc.Updated = s.now().UnixMilli()
	stored, err := json.Marshal(doc)
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	if _, err := s.store.Whisks.Put(docID, rev, stored); err != nil {
		if errors.Is(err, store.ErrConflict) {
			s.fail(c, newAPIError(http.StatusConflict, msgConflict))
			return
		}
		s.fail(c, internal(err))
		return
	}
	respond(c, http.StatusOK, served(doc, true))
}

func (s *Server) defaultLimits() actionLimits {
	return actionLimits{Timeout: s.limits.StdTimeout, Memory: s.limits.StdMemoryMB, Logs: s.limits.StdLogsMB, Concurrency: 1}
}

func applyLimits(l actionLimits, put map[string]int) actionLimits {
	if v, ok := put["timeout"]; ok {
		l.Timeout = v
	}
	if v, ok := put["memory"]; ok {
		l.Memory = v
	}
	if v, ok := put["logs"]; ok {
		l.Logs = v
	}
	if v, ok := put["concurrency"]; ok {
		l.Concurrency = v
	}
	return l
}

func execAnnotation(e execDoc) json.RawMessage {
	b, _ := json.Marshal(e.Kind)
	return b
}

// makeAction builds a new action from a PUT (WhiskActionsApi.make).
func (s *Server) makeAction(ns string, name entityName, put *actionPut) (actionDoc, error) {
	exec := *put.Exec
	params := put.Parameters
	if exec.Kind == "sequence" {
		comps, err := s.checkSequence(ns, name, exec.Components)
		if err != nil {
			return actionDoc{}, err
		}
		exec.Components = comps
		params = sequenceParams(comps)
	}
	ann := put.Annotations.without(put.DelAnnotations)
	if _, ok := ann.get("provide-api-key"); !ok {
		// New actions get no API key unless the client asks (require-api-key-annotation).
		ann = append(ann, keyValue{Key: "provide-api-key", Value: json.RawMessage(`false`)})
	}
	ann = ann.with("exec", execAnnotation(exec))
	version := "0.0.1"
	if put.Version != "" {
		version = put.Version
	}
	publish := false
	if put.Publish != nil {
		publish = *put.Publish
	}
	return actionDoc{
		Namespace: ns, Name: name.Name, Version: version, Exec: exec, Parameters: params,
		Limits: applyLimits(s.defaultLimits(), put.Limits), Publish: publish, Annotations: ann,
	}, nil
}

// updateAction merges a PUT over a stored action (WhiskActionsApi.updateWhiskAction): missing
// members keep their old values, the version's patch number goes up unless one is given.
func (s *Server) updateAction(ns string, name entityName, old actionDoc, put *actionPut) (actionDoc, error) {
	exec := old.Exec
	params := old.Parameters
	switch {
	case put.Exec != nil && put.Exec.Kind == "sequence":
		comps, err := s.checkSequence(ns, name, put.Exec.Components)
		if err != nil {
			return actionDoc{}, err
		}
		exec = *put.Exec
		exec.Components = comps
		params = sequenceParams(comps)
	case put.Exec != nil:
		exec = *put.Exec
		if put.HasParameters {
			params = put.Parameters
		} else if old.Exec.Kind == "sequence" {
			params = nil
		}
	default:
		if put.HasParameters && old.Exec.Kind != "sequence" {
			params = put.Parameters
		}
	}
	ann := old.Annotations
	if put.HasAnnotations {
		ann = put.Annotations
	}
	ann = ann.without(put.DelAnnotations).with("exec", execAnnotation(exec))
	version := bumpPatch(old.Version)
	if put.Version != "" {
		version = put.Version
	}
	publish := old.Publish
	if put.Publish != nil {
		publish = *put.Publish
	}
	return actionDoc{
		Namespace: ns, Name: name.Name, Version: version, Exec: exec, Parameters: params,
		Limits: applyLimits(old.Limits, put.Limits), Publish: publish, Annotations: ann,
	}, nil
}

func sequenceParams(comps []string) keyValues {
	b, _ := json.Marshal(comps)
	return keyValues{{Key: "_actions", Value: b}}
}

// resolveComponent turns a component reference ("/ns/name", "/_/name", "ns/name", "name")
// into "/ns/name" with the caller's namespace for "_" and for a bare name.
func resolveComponent(ns, comp string) (string, string, error) {
	c := strings.TrimPrefix(strings.TrimSpace(comp), "/")
	parts := strings.Split(c, "/")
	var cns, rest string
	switch len(parts) {
	case 1:
		cns, rest = ns, parts[0]
	case 2, 3:
		cns, rest = parts[0], strings.Join(parts[1:], "/")
	default:
		return "", "", malformed("The fully qualified name of the entity must contain at least the namespace and the name of the entity.")
	}
	if cns == "_" {
		cns = ns
	}
	for _, seg := range append([]string{cns}, strings.Split(rest, "/")...) {
		if !entityNamePattern.MatchString(seg) {
			return "", "", badRequest(msgEntityNameBad)
		}
	}
	return "/" + cns + "/" + rest, cns + "/" + rest, nil
}

// checkSequence resolves the components and enforces OpenWhisk's rules: at least one, no more
// than the limit of atomic actions once nested sequences are inlined, every component exists,
// none refers back to the sequence.
func (s *Server) checkSequence(ns string, name entityName, comps []string) ([]string, error) {
	if len(comps) == 0 {
		return nil, badRequest(msgSequenceEmpty)
	}
	if len(comps) > s.limits.MaxSequence {
		return nil, badRequest(msgSequenceTooLong)
	}
	self := name.docID(ns)
	resolved := make([]string, len(comps))
	count := 0
	var walk func(docIDs []string, depth int) error
	walk = func(docIDs []string, depth int) error {
		for _, id := range docIDs {
			if id == self {
				return badRequest(msgSequenceCyclic)
			}
			a, _, err := s.loadAction(id)
			if err != nil {
				var ae *apiError
				if errors.As(err, &ae) && ae.status == http.StatusNotFound {
					return badRequest(msgSequenceMissing)
				}
				return err
			}
			if a.Exec.Kind == "sequence" {
				if depth > s.limits.MaxSequence {
					return badRequest(msgSequenceTooLong)
				}
				inner := make([]string, 0, len(a.Exec.Components))
				for _, c := range a.Exec.Components {
					_, id, err := resolveComponent(a.Namespace, c)
					if err != nil {
						return err
					}
					inner = append(inner, id)
				}
				if err := walk(inner, depth+1); err != nil {
					return err
				}
				continue
			}
			count++
			if count > s.limits.MaxSequence {
				return badRequest(msgSequenceTooLong)
			}
		}
		return nil
	}
	ids := make([]string, len(comps))
	for i, c := range comps {
		full, id, err := resolveComponent(ns, c)
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(id, ns+"/") {
			// Other namespaces' actions are not visible to this one.
			return nil, newAPIError(http.StatusForbidden, msgNotAuthorized)
		}
		resolved[i], ids[i] = full, id
	}
	if err := walk(ids, 0); err != nil {
		return nil, err
	}
	return resolved, nil
}

func (s *Server) listActions(c *gin.Context) {
	s.listActionsIn(c, namespaceOf(c)+"/", "")
}

func (s *Server) listActionsIn(c *gin.Context, prefix, pkg string) {
	const coll = "actions"
	skip, limit, err := queryPage(c, coll)
	if err != nil {
		s.fail(c, err)
		return
	}
	var docs []actionDoc
	err = s.store.Whisks.Scan(prefix, func(d store.Doc) bool {
		rest := strings.TrimPrefix(d.ID, prefix)
		if strings.Contains(rest, "/") != (pkg != "") {
			return true
		}
		var a actionDoc
		if json.Unmarshal(d.Body, &a) == nil && (a.EntityType == "" || a.EntityType == "action") {
			docs = append(docs, a)
		}
		return true
	})
	if err != nil {
		s.fail(c, internal(err))
		return
	}
	if queryBool(c, "count") {
		respond(c, http.StatusOK, map[string]int{"actions": max(0, len(docs)-skip)})
		return
	}
	sort.SliceStable(docs, func(i, j int) bool {
		if docs[i].Updated != docs[j].Updated {
			return docs[i].Updated > docs[j].Updated
		}
		return docs[i].Name < docs[j].Name
	})
	out := make([]map[string]any, 0, limit)
	for i := skip; i < len(docs) && len(out) < limit; i++ {
		out = append(out, docs[i].summary())
	}
	respond(c, http.StatusOK, out)
}

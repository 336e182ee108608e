package controller

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gin-gonic/gin"
)

// The texts of the controller's own errors, exactly as OpenWhisk writes them (spec §1.2).
const (
	msgAuthInvalid      = "The supplied authentication is invalid"
	msgAuthMissing      = "The resource requires authentication, which was not supplied with the request"
	msgNotAuthorized    = "The supplied authentication is not authorized to access this resource."
	msgNotFound         = "The requested resource does not exist."
	msgNoRoute          = "The requested resource could not be found."
	msgExists           = "resource already exists"
	msgConflict         = "Concurrent modification to resource detected."
	msgNotInCollection  = "Resource by this name exists but is not in this collection."
	msgMalformed        = "The request content was malformed:\n"
	msgParamsNotAllowed = "Request defines parameters that are not allowed (e.g., reserved properties)."
	msgDocsWithCount    = "The parameter 'docs' is not permitted with 'count'."
	msgEntityNameBad    = "The name of the entity contains illegal characters."
	msgNamespaceBad     = "The namespace contains illegal characters."
	msgSequenceTooLong  = "Too many actions in the sequence."
	msgSequenceEmpty    = "No component specified for the sequence."
	msgSequenceCyclic   = "Sequence may not refer to itself."
	msgSequenceMissing  = "Sequence component does not exist."
	msgSequenceFailed   = "Sequence failed."
	msgServiceUnavail   = "Service Unavailable"
	msgInternal         = "Internal Server Error"
	msgMethodNotAllowed = "HTTP method not allowed, supported methods: "
)

func msgListLimit(collection string, v, max int) string {
	return fmt.Sprintf("The value '%d' is not in the range of 0 to %d for %s.", v, max, collection)
}

func msgListSkip(collection string, v int) string {
	return fmt.Sprintf("The value '%d' is not greater than or equal to 0 for %s.", v, collection)
}

func msgNotInteger(collection, v string) string {
	return fmt.Sprintf("The value '%s' is not an integer for %s.", v, collection)
}

func msgInvalidTimeout(maxMillis int64) string {
	return fmt.Sprintf("The query parameter 'timeout' was malformed:\nTimeout must be number of milliseconds up to %d.", maxMillis)
}

func msgActivationIDLength(n int) string {
	return fmt.Sprintf("Activation id length is %d but must be 32.", n)
}

func msgEntityTooBig(field string, is, allowed int64) string {
	return fmt.Sprintf("%s larger than allowed: %d > %d bytes.", field, is, allowed)
}

func msgBadNameFilter(v string) string {
	return "Parameter may be a 'simple' name or 'package-name/simple' name: " + v
}

func msgBadEpoch(v string) string {
	return "Parameter is not a valid value for epoch seconds: " + v
}

// apiError is an error that becomes the OpenWhisk error envelope with this status.
type apiError struct {
	status int
	msg    string
	err    error // the cause, for logs only
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%d %s: %v", e.status, e.msg, e.err)
	}
	return fmt.Sprintf("%d %s", e.status, e.msg)
}

func (e *apiError) Unwrap() error { return e.err }

func newAPIError(status int, msg string) *apiError { return &apiError{status: status, msg: msg} }

func badRequest(msg string) *apiError { return newAPIError(http.StatusBadRequest, msg) }

func malformed(detail string) *apiError { return badRequest(msgMalformed + detail) }

func internal(err error) *apiError {
	return &apiError{status: http.StatusInternalServerError, msg: msgInternal, err: err}
}

// errorBody is the envelope: {"error": text, "code": transaction id}.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// fail answers the request with err as an OpenWhisk error envelope and stops the chain.
func (s *Server) fail(c *gin.Context, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = internal(err)
	}
	tx := txOf(c)
	if ae.status >= 500 {
		s.log.Error("request failed", append(tx.fields(), zapStatus(ae.status), zapErr(ae))...)
	} else {
		s.log.Debug("request rejected", append(tx.fields(), zapStatus(ae.status), zapErr(ae))...)
	}
	if ae.status == http.StatusUnauthorized {
		c.Header("WWW-Authenticate", `Basic realm="OpenWhisk secure realm"`)
	}
	c.AbortWithStatusJSON(ae.status, errorBody{Error: ae.msg, Code: tx.ID})
}

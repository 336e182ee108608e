package activation

import "fmt"

// StoreLevel is whisk.activation.store-blocking-result-level / store-non-blocking-result-level.
type StoreLevel int

// The store levels.
const (
	// StoreAlways stores every activation (the default).
	StoreAlways StoreLevel = iota
	// StoreFailures stores every activation that did not succeed.
	StoreFailures
	// StoreFailuresNotApplicationErrors stores developer and whisk errors only.
	StoreFailuresNotApplicationErrors
)

// ParseStoreLevel reads "STORE_ALWAYS", "STORE_FAILURES" or "STORE_FAILURES_NOT_APPLICATION_ERRORS".
func ParseStoreLevel(s string) (StoreLevel, error) {
	switch s {
	case "STORE_ALWAYS":
		return StoreAlways, nil
	case "STORE_FAILURES":
		return StoreFailures, nil
	case "STORE_FAILURES_NOT_APPLICATION_ERRORS":
		return StoreFailuresNotApplicationErrors, nil
	}
	return 0, fmt.Errorf("activation: unknown store level %q (STORE_ALWAYS, STORE_FAILURES or STORE_FAILURES_NOT_APPLICATION_ERRORS)", s)
}

func (l StoreLevel) stores(r ActivationResponse) bool {
	switch l {
	case StoreFailures:
		return !r.IsSuccess()
	case StoreFailuresNotApplicationErrors:
		return r.IsDeveloperError() || r.IsWhiskError()
	}
	return true
}

// ShouldStore decides whether an activation record is written (ActivationStore.storeAfterCheck):
// never when the namespace sets storeActivations false (this wins over extra logging); always
// when the transid asks for extra logging; otherwise per the level for blocking or
// non-blocking activations. (Whether the ack situation stores at all is AckPlan.Store.)
func ShouldStore(msg *ActivationMessage, r ActivationResponse, blockingLevel, nonBlockingLevel StoreLevel) bool {
	if s := msg.User.Limits.StoreActivations; s != nil && !*s {
		return false
	}
	if msg.TransID.ExtraLogging {
		return true
	}
	if msg.Blocking {
		return blockingLevel.stores(r)
	}
	return nonBlockingLevel.stores(r)
}

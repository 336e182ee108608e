package activation

// PingMessage is the invoker's health ping on the health topic (protocol §4). The instance
// travels under the JSON name "name".
type PingMessage struct {
	Instance InvokerInstanceID
	// IsEnabled is nil when absent, which means enabled.
	IsEnabled *bool
}

// NewPing builds a ping that states isEnabled explicitly, as the invoker sends it.
func NewPing(instance InvokerInstanceID, enabled bool) PingMessage {
	return PingMessage{Instance: instance, IsEnabled: &enabled}
}

// Enabled reports whether the invoker says it is enabled (absent ⇒ true).
func (p PingMessage) Enabled() bool { return p.IsEnabled == nil || *p.IsEnabled }

// MarshalJSON writes {"name": …, "isEnabled": …}.
func (p PingMessage) MarshalJSON() ([]byte, error) {
	return Marshal(struct {
		Name      InvokerInstanceID `json:"name"`
		IsEnabled *bool             `json:"isEnabled,omitempty"`
	}{p.Instance, p.IsEnabled})
}

// DecodePing reads a PingMessage. Errors are *FieldError wrapping ErrInvalidMessage.
func DecodePing(data []byte) (*PingMessage, error) {
	r := reader{doc: "PingMessage", kind: ErrInvalidMessage}
	o, err := r.parseObject(data, "")
	if err != nil {
		return nil, err
	}
	p := &PingMessage{}
	if p.Instance, err = o.invokerIDField("name"); err != nil {
		return nil, err
	}
	if p.IsEnabled, err = o.optBool("isEnabled"); err != nil {
		return nil, err
	}
	return p, nil
}

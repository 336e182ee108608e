package activation

import (
	"fmt"
	"math"
)

// InvokerInstanceID identifies an invoker in acks ("instance") and pings ("name").
//
// Tags and DedicatedNamespaces are always written (as [] when empty): the 2.0 controller
// requires them. UniqueName, DisplayedName and BusyMemory are written only when set.
type InvokerInstanceID struct {
	Instance            int
	UniqueName          string
	DisplayedName       string
	UserMemory          ByteSize
	BusyMemory          *ByteSize
	Tags                []string
	DedicatedNamespaces []string
}

// Source is "invoker<N>", the user events' source and the consumer topic name.
func (i InvokerInstanceID) Source() string { return fmt.Sprintf("invoker%d", i.Instance) }

// Topic is the topic the invoker consumes (without the deployment's prefix).
func (i InvokerInstanceID) Topic() string { return i.Source() }

// MarshalJSON writes the 2.0 form.
func (i InvokerInstanceID) MarshalJSON() ([]byte, error) { return i.appendJSON(nil), nil }

// DecodeInvokerInstanceID reads an InvokerInstanceId document. Errors are *FieldError
// wrapping ErrInvalidMessage.
func DecodeInvokerInstanceID(data []byte) (InvokerInstanceID, error) {
	r := reader{doc: "InvokerInstanceId", kind: ErrInvalidMessage}
	o, err := r.parseObject(data, "")
	if err != nil {
		return InvokerInstanceID{}, err
	}
	return o.invokerID()
}

func (o obj) invokerID() (InvokerInstanceID, error) {
	var i InvokerInstanceID
	t, err := o.reqString("instanceType")
	if err != nil {
		return i, err
	}
	if t != "invoker" {
		return i, o.r.fail(o.field("instanceType"), nil, "must be \"invoker\", got %q", t)
	}
	n, err := o.reqInt("instance", math.MinInt32, math.MaxInt32)
	if err != nil {
		return i, err
	}
	i.Instance = int(n)
	if i.UserMemory, _, err = o.byteSize("userMemory", true); err != nil {
		return i, err
	}
	if b, ok, err := o.byteSize("busyMemory", false); err != nil {
		return i, err
	} else if ok {
		i.BusyMemory = &b
	}
	if i.UniqueName, _, err = o.optString("uniqueName"); err != nil {
		return i, err
	}
	if i.DisplayedName, _, err = o.optString("displayedName"); err != nil {
		return i, err
	}
	if i.Tags, err = o.strings("tags", true); err != nil {
		return i, err
	}
	if i.DedicatedNamespaces, err = o.strings("dedicatedNamespaces", true); err != nil {
		return i, err
	}
	return i, nil
}

func (o obj) invokerIDField(name string) (InvokerInstanceID, error) {
	sub, _, err := o.object(name, true)
	if err != nil {
		return InvokerInstanceID{}, err
	}
	return sub.invokerID()
}

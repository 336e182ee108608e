package activation

import (
	"bytes"
	"encoding/json"
)

// Marshal encodes v as compact JSON without HTML escaping: "<", ">" and "&" stay as they are,
// as OpenWhisk (spray-json) writes them, so that strings — a transaction id, an error text —
// are carried byte for byte. Use it instead of json.Marshal for everything sent on the wire;
// every MarshalJSON in this package uses it for its parts.
func Marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

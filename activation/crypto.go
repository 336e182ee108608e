package activation

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
)

// Encryption schemes of parameters (whisk.parameter-storage).
const (
	SchemeAES128 = "aes-128"
	SchemeAES256 = "aes-256"
)

// ivLength is the IV each scheme writes and expects (errata 1: 12 bytes for aes-128, 128 for aes-256).
func ivLength(scheme string) (int, bool) {
	switch scheme {
	case SchemeAES128:
		return 12, true
	case SchemeAES256:
		return 128, true
	}
	return 0, false
}

// ParameterKeys are the whisk.parameter-storage keys, raw (16 and 32 bytes). Current names the
// scheme new parameters are encrypted with ("" = none).
type ParameterKeys struct {
	Current string
	AES128  []byte
	AES256  []byte
}

// DecodeParameterKeys reads {"current": …, "aes-128": base64, "aes-256": base64}, the form of
// the whisk.parameter-storage configuration.
func DecodeParameterKeys(data []byte) (ParameterKeys, error) {
	var w struct {
		Current string `json:"current"`
		AES128  string `json:"aes-128"`
		AES256  string `json:"aes-256"`
	}
	if err := json.Unmarshal(data, &w); err != nil {
		return ParameterKeys{}, fmt.Errorf("activation: parameter keys: %w", err)
	}
	k := ParameterKeys{Current: w.Current}
	var err error
	if w.AES128 != "" {
		if k.AES128, err = base64.StdEncoding.DecodeString(w.AES128); err != nil || len(k.AES128) != 16 {
			return ParameterKeys{}, fmt.Errorf("activation: parameter keys: aes-128 must be 16 bytes in base64")
		}
	}
	if w.AES256 != "" {
		if k.AES256, err = base64.StdEncoding.DecodeString(w.AES256); err != nil || len(k.AES256) != 32 {
			return ParameterKeys{}, fmt.Errorf("activation: parameter keys: aes-256 must be 32 bytes in base64")
		}
	}
	return k, nil
}

func (k ParameterKeys) aead(scheme string) (cipher.AEAD, int, error) {
	iv, ok := ivLength(scheme)
	if !ok {
		return nil, 0, fmt.Errorf("%w: unknown encryption scheme %q", ErrDecrypt, scheme)
	}
	key := k.AES128
	if scheme == SchemeAES256 {
		key = k.AES256
	}
	if len(key) == 0 {
		return nil, 0, fmt.Errorf("%w: no key configured for %s", ErrDecrypt, scheme)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %s key: %v", ErrDecrypt, scheme, err)
	}
	g, err := cipher.NewGCMWithNonceSize(block, iv)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrDecrypt, err)
	}
	return g, iv, nil
}

// Decrypt opens one encrypted parameter value: base64 of (int32 big-endian IV length ‖ IV ‖
// AES-GCM ciphertext with 128-bit tag); the plaintext is the JSON text of the original value,
// which is returned. Errors wrap ErrDecrypt.
func (k ParameterKeys) Decrypt(scheme, value string) (json.RawMessage, error) {
	g, iv, err := k.aead(scheme)
	if err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("%w: value is not base64: %v", ErrDecrypt, err)
	}
	if len(raw) < 4 {
		return nil, fmt.Errorf("%w: value too short", ErrDecrypt)
	}
	if n := binary.BigEndian.Uint32(raw); n != uint32(iv) {
		return nil, fmt.Errorf("%w: IV length %d, %s uses %d", ErrDecrypt, n, scheme, iv)
	}
	if len(raw) < 4+iv+g.Overhead() {
		return nil, fmt.Errorf("%w: value too short", ErrDecrypt)
	}
	plain, err := g.Open(nil, raw[4:4+iv], raw[4+iv:], nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: authentication failed", ErrDecrypt, scheme)
	}
	if !json.Valid(plain) {
		return nil, fmt.Errorf("%w: plaintext is not JSON", ErrDecrypt)
	}
	return compact(plain), nil
}

// Encrypt seals the JSON value v with scheme, drawing the IV from random (crypto/rand.Reader
// in production). It is Decrypt's inverse; the standalone controller uses it on PUT.
func (k ParameterKeys) Encrypt(scheme string, v json.RawMessage, random io.Reader) (string, error) {
	g, ivLen, err := k.aead(scheme)
	if err != nil {
		return "", err
	}
	out := make([]byte, 4+ivLen, 4+ivLen+len(v)+g.Overhead())
	binary.BigEndian.PutUint32(out, uint32(ivLen))
	if _, err := io.ReadFull(random, out[4:]); err != nil {
		return "", fmt.Errorf("activation: encrypt: %w", err)
	}
	out = g.Seal(out, out[4:4+ivLen], compact(v), nil)
	return base64.StdEncoding.EncodeToString(out), nil
}

package pool

import (
	"encoding/base64"
	"encoding/json"
)

func decodeB64(s string) ([]byte, error)  { return base64.RawURLEncoding.DecodeString(s) }
func encodeB64(b []byte) string           { return base64.RawURLEncoding.EncodeToString(b) }
func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
func jsonMarshal(v any) ([]byte, error)   { return json.Marshal(v) }

package interpose

import "context"

// SayGoodbye sends Goodbye and returns the server's answer, leaving the
// connection open: tests ask a server whether it knows the call.
func (s *Session) SayGoodbye(ctx context.Context) error { return s.goodbye(ctx) }

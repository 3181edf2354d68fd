package api

import (
	"errors"
	"fmt"
)

// Result is a CUDA driver result code (CUresult). The values are the
// driver's, so they pass through to applications unchanged.
type Result uint32

// The result codes the fabric produces. Values match cuda.h.
const (
	Success                        Result = 0
	ErrInvalidValue                Result = 1
	ErrOutOfMemory                 Result = 2
	ErrNotInitialized              Result = 3
	ErrDeinitialized               Result = 4
	ErrNoDevice                    Result = 100
	ErrInvalidDevice               Result = 101
	ErrInvalidImage                Result = 200
	ErrInvalidContext              Result = 201
	ErrNoBinaryForGPU              Result = 209
	ErrUnsupportedLimit            Result = 215
	ErrInvalidPTX                  Result = 218
	ErrInvalidSource               Result = 300
	ErrFileNotFound                Result = 301
	ErrInvalidHandle               Result = 400
	ErrIllegalState                Result = 401
	ErrNotFound                    Result = 500
	ErrNotReady                    Result = 600
	ErrIllegalAddress              Result = 700
	ErrMisalignedAddress           Result = 716
	ErrLaunchOutOfResources        Result = 701
	ErrLaunchTimeout               Result = 702
	ErrHostMemoryAlreadyRegistered Result = 712
	ErrHostMemoryNotRegistered     Result = 713
	ErrLaunchFailed                Result = 719
	ErrNotPermitted                Result = 800
	ErrNotSupported                Result = 801
	ErrSystemNotReady              Result = 802
	ErrStreamCaptureUnsupp         Result = 900
	ErrStreamCaptureInvalidated    Result = 901
	ErrStreamCaptureUnmatched      Result = 903
	ErrStreamCaptureUnjoined       Result = 904
	ErrStreamCaptureIsolation      Result = 905
	ErrStreamCaptureImplicit       Result = 906
	ErrTimeout                     Result = 909
	ErrUnknown                     Result = 999
)

var resultNames = map[Result]string{
	Success:                        "CUDA_SUCCESS",
	ErrInvalidValue:                "CUDA_ERROR_INVALID_VALUE",
	ErrOutOfMemory:                 "CUDA_ERROR_OUT_OF_MEMORY",
	ErrNotInitialized:              "CUDA_ERROR_NOT_INITIALIZED",
	ErrDeinitialized:               "CUDA_ERROR_DEINITIALIZED",
	ErrNoDevice:                    "CUDA_ERROR_NO_DEVICE",
	ErrInvalidDevice:               "CUDA_ERROR_INVALID_DEVICE",
	ErrInvalidImage:                "CUDA_ERROR_INVALID_IMAGE",
	ErrInvalidContext:              "CUDA_ERROR_INVALID_CONTEXT",
	ErrNoBinaryForGPU:              "CUDA_ERROR_NO_BINARY_FOR_GPU",
	ErrInvalidPTX:                  "CUDA_ERROR_INVALID_PTX",
	ErrUnsupportedLimit:            "CUDA_ERROR_UNSUPPORTED_LIMIT",
	ErrHostMemoryAlreadyRegistered: "CUDA_ERROR_HOST_MEMORY_ALREADY_REGISTERED",
	ErrHostMemoryNotRegistered:     "CUDA_ERROR_HOST_MEMORY_NOT_REGISTERED",
	ErrInvalidSource:               "CUDA_ERROR_INVALID_SOURCE",
	ErrFileNotFound:                "CUDA_ERROR_FILE_NOT_FOUND",
	ErrInvalidHandle:               "CUDA_ERROR_INVALID_HANDLE",
	ErrIllegalState:                "CUDA_ERROR_ILLEGAL_STATE",
	ErrNotFound:                    "CUDA_ERROR_NOT_FOUND",
	ErrNotReady:                    "CUDA_ERROR_NOT_READY",
	ErrIllegalAddress:              "CUDA_ERROR_ILLEGAL_ADDRESS",
	ErrMisalignedAddress:           "CUDA_ERROR_MISALIGNED_ADDRESS",
	ErrLaunchOutOfResources:        "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES",
	ErrLaunchTimeout:               "CUDA_ERROR_LAUNCH_TIMEOUT",
	ErrLaunchFailed:                "CUDA_ERROR_LAUNCH_FAILED",
	ErrNotPermitted:                "CUDA_ERROR_NOT_PERMITTED",
	ErrNotSupported:                "CUDA_ERROR_NOT_SUPPORTED",
	ErrSystemNotReady:              "CUDA_ERROR_SYSTEM_NOT_READY",
	ErrStreamCaptureUnsupp:         "CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED",
	ErrStreamCaptureInvalidated:    "CUDA_ERROR_STREAM_CAPTURE_INVALIDATED",
	ErrStreamCaptureUnmatched:      "CUDA_ERROR_STREAM_CAPTURE_UNMATCHED",
	ErrStreamCaptureUnjoined:       "CUDA_ERROR_STREAM_CAPTURE_UNJOINED",
	ErrStreamCaptureIsolation:      "CUDA_ERROR_STREAM_CAPTURE_ISOLATION",
	ErrStreamCaptureImplicit:       "CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
	ErrTimeout:                     "CUDA_ERROR_TIMEOUT",
	ErrUnknown:                     "CUDA_ERROR_UNKNOWN",
}

// Name is the CUresult's symbolic name, as cuGetErrorName gives it.
func (r Result) Name() string {
	if n, ok := resultNames[r]; ok {
		return n
	}
	return fmt.Sprintf("CUDA_ERROR_%d", uint32(r))
}

func (r Result) Error() string { return r.Name() }

// Err returns nil for Success and the Result itself otherwise, so callers
// can write `if err := r.Err(); err != nil`.
func (r Result) Err() error {
	if r == Success {
		return nil
	}
	return r
}

// Error is a Result with the detail a human needs (which handle, which
// pointer, which kernel). errors.Is matches it against its Result.
type Error struct {
	Result Result
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Result.Name()
	}
	return e.Result.Name() + ": " + e.Detail
}

// Is reports whether target is e's Result, so errors.Is(err, api.ErrOutOfMemory) works.
func (e *Error) Is(target error) bool {
	r, ok := target.(Result)
	return ok && r == e.Result
}

// Unwrap returns the bare Result.
func (e *Error) Unwrap() error { return e.Result }

// Errorf builds an *Error with a formatted detail.
func Errorf(r Result, format string, args ...any) error {
	return &Error{Result: r, Detail: fmt.Sprintf(format, args...)}
}

// ResultOf maps any error to the Result that a client should see: the
// Result it wraps, or ErrUnknown. nil maps to Success.
func ResultOf(err error) Result {
	if err == nil {
		return Success
	}
	var r Result
	if errors.As(err, &r) {
		return r
	}
	return ErrUnknown
}

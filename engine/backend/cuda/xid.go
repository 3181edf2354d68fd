package cuda

import "fmt"

// Xid errors are the driver's reports of GPU faults. Some are caused by the
// application that was running (a bad address, a kernel that faulted): the
// GPU is fine once that context is gone, and a shared server must not take
// a GPU out of service because one client's kernel crashed. The rest say
// the GPU itself needs attention. The split follows NVIDIA's Kubernetes
// device plugin, which skips the same application Xids by default.
var applicationXids = map[uint64]bool{13: true, 31: true, 43: true, 45: true, 68: true, 109: true}

var xidNames = map[uint64]string{
	13:  "graphics engine exception",
	31:  "GPU memory page fault",
	32:  "invalid or corrupted push buffer stream",
	38:  "driver firmware error",
	43:  "GPU stopped processing",
	45:  "preemptive cleanup after previous errors",
	48:  "double-bit ECC error",
	61:  "internal micro-controller breakpoint/warning",
	62:  "internal micro-controller halt",
	63:  "ECC page retirement or row remapping recorded",
	64:  "ECC page retirement or row remapping failure",
	68:  "video processor exception",
	69:  "graphics engine class error",
	74:  "NVLink error",
	79:  "GPU has fallen off the bus",
	92:  "high single-bit ECC error rate",
	94:  "contained ECC error",
	95:  "uncontained ECC error",
	109: "context switch timeout",
	119: "GSP RPC timeout",
	120: "GSP error",
	140: "unrecovered ECC error",
}

// classifyXid says whether an Xid makes the GPU unhealthy, and names it.
func classifyXid(xid uint64) (critical bool, what string) {
	what = fmt.Sprintf("Xid %d", xid)
	if name, ok := xidNames[xid]; ok {
		what += " (" + name + ")"
	}
	return !applicationXids[xid], what
}

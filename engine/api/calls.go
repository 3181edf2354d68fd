package api

import "strconv"

// The opcodes. Values are part of the protocol: append, never renumber.
const (
	OpHello Op = iota + 1
	OpPing
	OpServerStatus
	OpAttach
	OpDeviceGet
	OpMemGetInfo
	OpCtxSynchronize
	OpMemAlloc
	OpMemFree
	OpMemcpyHtoD
	OpMemcpyDtoH
	OpMemcpyDtoD
	OpMemset
	OpModuleLoad
	OpModuleUnload
	OpModuleGetFunction
	OpModuleGetGlobal
	OpLaunchKernel
	OpStreamCreate
	OpStreamDestroy
	OpStreamSynchronize
	OpStreamQuery
	OpStreamWaitEvent
	OpEventCreate
	OpEventRecord
	OpEventSynchronize
	OpEventQuery
	OpEventElapsedTime
	OpEventDestroy
	OpEcho
	OpDescribe
	OpJoinBulk
	OpGoodbye
	OpNVMLQuery
	OpGraphCreate
	OpGraphLaunch
	OpGraphDestroy
	OpStreamWaitValue
	OpHostFunc
	OpHostFuncDone
	OpStreamWriteValue
	OpLink
	OpFuncAttributes
	OpMemcpy3D // memory2.go
	OpMemset2D
	OpMemAddressReserve
	OpMemAddressFree
	OpMemCreate
	OpMemRelease
	OpMemMap
	OpMemUnmap
	OpMemcpyPeer
	OpIpcGetMemHandle
	OpIpcOpenMemHandle
	OpIpcCloseMemHandle
	OpIpcGetEventHandle
	OpIpcOpenEventHandle
	OpPinnedMap
	OpPinnedUnmap
	OpMemcpyHtoDPinned
	OpMemcpyDtoHPinned
	opEnd
)

var opNames = [...]string{
	OpHello: "Hello", OpPing: "Ping", OpServerStatus: "ServerStatus",
	OpAttach: "Attach", OpDeviceGet: "DeviceGet", OpMemGetInfo: "MemGetInfo",
	OpCtxSynchronize: "CtxSynchronize", OpMemAlloc: "MemAlloc", OpMemFree: "MemFree",
	OpMemcpyHtoD: "MemcpyHtoD", OpMemcpyDtoH: "MemcpyDtoH", OpMemcpyDtoD: "MemcpyDtoD",
	OpMemset: "Memset", OpModuleLoad: "ModuleLoad", OpModuleUnload: "ModuleUnload",
	OpModuleGetFunction: "ModuleGetFunction", OpModuleGetGlobal: "ModuleGetGlobal",
	OpLaunchKernel: "LaunchKernel", OpStreamCreate: "StreamCreate",
	OpStreamDestroy: "StreamDestroy", OpStreamSynchronize: "StreamSynchronize",
	OpStreamQuery: "StreamQuery", OpStreamWaitEvent: "StreamWaitEvent",
	OpEventCreate: "EventCreate", OpEventRecord: "EventRecord",
	OpEventSynchronize: "EventSynchronize", OpEventQuery: "EventQuery",
	OpEventElapsedTime: "EventElapsedTime", OpEventDestroy: "EventDestroy",
	OpEcho: "Echo", OpDescribe: "Describe", OpJoinBulk: "JoinBulk",
	OpGoodbye: "Goodbye", OpNVMLQuery: "NVMLQuery",
	OpGraphCreate: "GraphCreate", OpGraphLaunch: "GraphLaunch", OpGraphDestroy: "GraphDestroy",
	OpStreamWaitValue: "StreamWaitValue", OpHostFunc: "HostFunc", OpHostFuncDone: "HostFuncDone",
	OpStreamWriteValue: "StreamWriteValue", OpLink: "Link", OpFuncAttributes: "FuncAttributes",
	OpMemcpy3D: "Memcpy3D", OpMemset2D: "Memset2D",
	OpMemAddressReserve: "MemAddressReserve", OpMemAddressFree: "MemAddressFree",
	OpMemCreate: "MemCreate", OpMemRelease: "MemRelease", OpMemMap: "MemMap", OpMemUnmap: "MemUnmap",
	OpMemcpyPeer: "MemcpyPeer", OpIpcGetMemHandle: "IpcGetMemHandle",
	OpIpcOpenMemHandle: "IpcOpenMemHandle", OpIpcCloseMemHandle: "IpcCloseMemHandle",
	OpIpcGetEventHandle: "IpcGetEventHandle", OpIpcOpenEventHandle: "IpcOpenEventHandle",
	OpPinnedMap: "PinnedMap", OpPinnedUnmap: "PinnedUnmap",
	OpMemcpyHtoDPinned: "MemcpyHtoDPinned", OpMemcpyDtoHPinned: "MemcpyDtoHPinned",
}

func (op Op) String() string {
	if op > 0 && op < opEnd {
		return opNames[op]
	}
	return "Op(" + strconv.Itoa(int(op)) + ")"
}

// Synchronising reports whether op waits for earlier work and so returns the
// session's latched asynchronous error, as the CUDA calls it mirrors do.
func (op Op) Synchronising() bool {
	switch op {
	case OpCtxSynchronize, OpStreamSynchronize, OpEventSynchronize,
		OpStreamQuery, OpEventQuery:
		return true
	}
	return false
}

// NewRequest returns an empty request of op's layout, or nil for an unknown op.
func NewRequest(op Op) Message {
	switch op {
	case OpHello:
		return new(Hello)
	case OpPing:
		return new(Ping)
	case OpServerStatus:
		return new(ServerStatus)
	case OpAttach:
		return new(Attach)
	case OpDeviceGet:
		return new(DeviceGet)
	case OpMemGetInfo:
		return new(MemGetInfo)
	case OpCtxSynchronize:
		return new(CtxSynchronize)
	case OpMemAlloc:
		return new(MemAlloc)
	case OpMemFree:
		return new(MemFree)
	case OpMemcpyHtoD:
		return new(MemcpyHtoD)
	case OpMemcpyDtoH:
		return new(MemcpyDtoH)
	case OpMemcpyDtoD:
		return new(MemcpyDtoD)
	case OpMemset:
		return new(Memset)
	case OpModuleLoad:
		return new(ModuleLoad)
	case OpModuleUnload:
		return new(ModuleUnload)
	case OpModuleGetFunction:
		return new(ModuleGetFunction)
	case OpModuleGetGlobal:
		return new(ModuleGetGlobal)
	case OpLaunchKernel:
		return new(LaunchKernel)
	case OpStreamCreate:
		return new(StreamCreate)
	case OpStreamDestroy:
		return new(StreamDestroy)
	case OpStreamSynchronize:
		return new(StreamSynchronize)
	case OpStreamQuery:
		return new(StreamQuery)
	case OpStreamWaitEvent:
		return new(StreamWaitEvent)
	case OpEventCreate:
		return new(EventCreate)
	case OpEventRecord:
		return new(EventRecord)
	case OpEventSynchronize:
		return new(EventSynchronize)
	case OpEventQuery:
		return new(EventQuery)
	case OpEventElapsedTime:
		return new(EventElapsedTime)
	case OpEventDestroy:
		return new(EventDestroy)
	case OpEcho:
		return new(Echo)
	case OpDescribe:
		return new(Describe)
	case OpJoinBulk:
		return new(JoinBulk)
	case OpGoodbye:
		return new(Goodbye)
	case OpNVMLQuery:
		return new(NVMLQuery)
	case OpPinnedMap:
		return new(PinnedMap)
	case OpPinnedUnmap:
		return new(PinnedUnmap)
	case OpMemcpyHtoDPinned:
		return new(MemcpyHtoDPinned)
	case OpMemcpyDtoHPinned:
		return new(MemcpyDtoHPinned)
	case OpGraphCreate:
		return new(GraphCreate)
	case OpGraphLaunch:
		return new(GraphLaunch)
	case OpGraphDestroy:
		return new(GraphDestroy)
	case OpStreamWaitValue:
		return new(StreamWaitValue)
	case OpHostFunc:
		return new(HostFunc)
	case OpHostFuncDone:
		return new(HostFuncDone)
	case OpStreamWriteValue:
		return new(StreamWriteValue)
	case OpLink:
		return new(Link)
	case OpFuncAttributes:
		return new(FuncAttributes)
	case OpMemcpy3D:
		return new(Memcpy3D)
	case OpMemset2D:
		return new(Memset2D)
	case OpMemAddressReserve:
		return new(MemAddressReserve)
	case OpMemAddressFree:
		return new(MemAddressFree)
	case OpMemCreate:
		return new(MemCreate)
	case OpMemRelease:
		return new(MemRelease)
	case OpMemMap:
		return new(MemMap)
	case OpMemUnmap:
		return new(MemUnmap)
	case OpMemcpyPeer:
		return new(MemcpyPeer)
	case OpIpcGetMemHandle:
		return new(IpcGetMemHandle)
	case OpIpcOpenMemHandle:
		return new(IpcOpenMemHandle)
	case OpIpcCloseMemHandle:
		return new(IpcCloseMemHandle)
	case OpIpcGetEventHandle:
		return new(IpcGetEventHandle)
	case OpIpcOpenEventHandle:
		return new(IpcOpenEventHandle)
	}
	return nil
}

// NewReply returns an empty reply of op's layout, or nil when the reply
// carries nothing but its status (and, for some calls, the frame payload).
func NewReply(op Op) Message {
	switch op {
	case OpHello:
		return new(HelloReply)
	case OpAttach:
		return new(AttachReply)
	case OpDeviceGet:
		return new(DeviceInfo)
	case OpMemGetInfo:
		return new(MemInfo)
	case OpMemAlloc:
		return new(MemAllocReply)
	case OpModuleGetFunction:
		return new(FunctionInfo)
	case OpModuleGetGlobal:
		return new(GlobalInfo)
	case OpEventElapsedTime:
		return new(ElapsedTime)
	case OpNVMLQuery:
		return new(NVMLDevice)
	case OpFuncAttributes:
		return new(FuncAttributeValues)
	case OpMemAddressReserve:
		return new(MemAllocReply)
	case OpIpcGetMemHandle:
		return new(IpcMemHandle)
	case OpIpcOpenMemHandle:
		return new(IpcOpened)
	case OpIpcGetEventHandle:
		return new(IpcMemHandle)
	}
	return nil
}

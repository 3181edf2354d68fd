package shm

import (
	"fmt"

	"github.com/gpufabric/gpufabric/numa"
	"github.com/gpufabric/gpufabric/transport"
)

// PlaceOnNode moves the connection's whole region, both directions' rings
// and slabs, to the given NUMA node. The server calls it once a session has
// attached its first device, so that the memory its shard copies payloads
// through sits on that device's node; until then it cannot know which node
// that is. It is best effort, as numa.MoveToNode is: pages the peer process
// has touched too stay where they are, a negative node (numa.UnknownNode)
// changes nothing, and a policy the kernel refuses is not an error. After
// Close it returns an error matching transport.ErrClosed.
func (c *Conn) PlaceOnNode(node int) error {
	// reg.mu is the lock retire and unmap take, so while it is held a
	// concurrent Close cannot retire the region under the move; Close
	// waits for it, and a move after Close sees retired. Sends and receives do not take
	// it and go on during the move, which migration keeps correct.
	c.reg.mu.Lock()
	defer c.reg.mu.Unlock()
	if c.reg.retired || c.reg.unmapped {
		return fmt.Errorf("shm: place region on node %d: %w", node, transport.ErrClosed)
	}
	if err := numa.MoveToNode(c.reg.mem, node); err != nil {
		return fmt.Errorf("shm: place region on node %d: %w", node, err)
	}
	return nil
}

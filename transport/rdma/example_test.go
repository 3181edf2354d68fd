package rdma_test

import (
	"context"
	"fmt"
	"log"

	"github.com/gpufabric/gpufabric/transport/rdma"
)

// A connection over the emulated fabric, as the tests use it; on a host
// with an RDMA device, rdma.OpenFor (or rdma.DialAuto) gives the device.
func Example() {
	fabric := rdma.NewEmulation()
	l, err := rdma.Listen("127.0.0.1:0", fabric.Open("server", rdma.EmuOptions{}), rdma.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		body, n, _ := c.Recv()
		payload := make([]byte, n)
		c.ReadPayload(payload) // 1 MiB: RDMA-written into the server's staging
		c.Send(append([]byte("got "), body...), nil)
	}()

	c, err := rdma.Dial(context.Background(), l.Addr(), fabric.Open("client", rdma.EmuOptions{}), rdma.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	if err := c.Send([]byte("a copy"), make([]byte, 1<<20)); err != nil {
		log.Fatal(err)
	}
	reply, _, err := c.Recv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s; copied by the client's CPU: %d bytes\n", reply, c.Stats().CopiedBytes)
	// Output: got a copy; copied by the client's CPU: 0 bytes
}

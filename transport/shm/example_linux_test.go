//go:build linux

package shm_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/gpufabric/gpufabric/transport/shm"
)

// A server and a client on the same host, here in one process.
func Example() {
	path := fmt.Sprintf("@gpufabric-example-%d", os.Getpid()) // abstract namespace: no file to clean up
	l, err := shm.Listen(path, shm.Options{RingSize: 1 << 20, SlabSize: 16 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		body, n, _ := conn.Recv()
		payload := make([]byte, n)
		conn.ReadPayload(payload)
		conn.Send(append([]byte("re: "), body...), payload)
		conn.Recv() // until the client closes
	}()

	conn, err := shm.Dial(context.Background(), path, shm.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.Send([]byte("copy"), make([]byte, 32<<20)) // twice the slab: sent in chunks
	body, n, _ := conn.Recv()
	conn.ReadPayload(make([]byte, n))
	fmt.Printf("%s: %d MiB over %s\n", body, n>>20, conn.Info().Transport)
	// Output: re: copy: 32 MiB over shm
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/dotkv/dotkv/client"
)

// The examples run against a real node (pebble in memory, the API
// handler on a loopback port).

func Example() {
	node := startNode(nodeOptions{})
	defer node.close()

	c, err := client.New(client.Config{Endpoints: []string{node.URL}})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	if _, err := c.Put(ctx, "greeting", []byte("hello"), client.ContentType("text/plain")); err != nil {
		panic(err)
	}
	obj, err := c.Get(ctx, "greeting", client.R(client.Quorum))
	if err != nil {
		panic(err)
	}
	for _, s := range obj.Siblings {
		fmt.Printf("%s (%s)\n", s.Value, s.ContentType)
	}
	// Write back with the read's context: the new value replaces the one
	// read, instead of adding a sibling.
	if _, err := c.Put(ctx, "greeting", []byte("hello, world"), client.Context(obj.Context)); err != nil {
		panic(err)
	}
	obj, err = c.Get(ctx, "greeting")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d sibling: %s\n", len(obj.Siblings), obj.Siblings[0].Value)
	// Output:
	// hello (text/plain)
	// 1 sibling: hello, world
}

// Two writes without a context (two clients that did not see each
// other's write) leave two siblings; Resolve merges them.
func ExampleClient_Resolve() {
	node := startNode(nodeOptions{})
	defer node.close()
	c, err := client.New(client.Config{Endpoints: []string{node.URL}})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	for _, item := range []string{"apples", "pears"} {
		if _, err := c.Put(ctx, "basket", []byte(item)); err != nil {
			panic(err)
		}
	}
	obj, err := c.Get(ctx, "basket")
	if err != nil {
		panic(err)
	}
	fmt.Println("siblings:", len(obj.Siblings))

	union := func(siblings []client.Sibling) ([]byte, string, error) {
		var items []string
		for _, s := range siblings {
			if !s.Deleted {
				items = append(items, strings.Split(string(s.Value), ",")...)
			}
		}
		slices.Sort(items)
		return []byte(strings.Join(slices.Compact(items), ",")), "text/csv", nil
	}
	if _, err := c.Resolve(ctx, "basket", union); err != nil {
		panic(err)
	}
	obj, err = c.Get(ctx, "basket")
	if err != nil {
		panic(err)
	}
	fmt.Printf("siblings: %d, %s\n", len(obj.Siblings), obj.Siblings[0].Value)
	// Output:
	// siblings: 2
	// siblings: 1, apples,pears
}

// A read of a deleted key is a NotFoundError carrying the tombstones'
// context: a write with it replaces them.
func ExampleNotFoundError() {
	node := startNode(nodeOptions{})
	defer node.close()
	c, err := client.New(client.Config{Endpoints: []string{node.URL}})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	if _, err := c.Put(ctx, "session", []byte("v1")); err != nil {
		panic(err)
	}
	if _, err := c.Delete(ctx, "session"); err != nil {
		panic(err)
	}
	_, err = c.Get(ctx, "session")
	var nf *client.NotFoundError
	if !errors.As(err, &nf) {
		panic(err)
	}
	fmt.Println("not found; has a context:", nf.Context != "")
	if _, err := c.Put(ctx, "session", []byte("v2"), client.Context(nf.Context)); err != nil {
		panic(err)
	}
	obj, err := c.Get(ctx, "session")
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d sibling: %s\n", len(obj.Siblings), obj.Siblings[0].Value)
	// Output:
	// not found; has a context: true
	// 1 sibling: v2
}

// A request fails over from a node that refuses connections to the next.
// A failed write says whether it may have been applied.
func ExampleClient_failover() {
	node := startNode(nodeOptions{})
	defer node.close()
	down := closedURL()
	c, err := client.New(client.Config{Endpoints: []string{down, node.URL}, InOrder: true})
	if err != nil {
		panic(err)
	}
	defer c.CloseIdleConnections()
	ctx := context.Background()

	w, err := c.Put(ctx, "k", []byte("v"))
	if err != nil {
		panic(err)
	}
	fmt.Println("answered by the second endpoint:", w.Endpoint == node.URL)

	// A bad context is refused before anything is written.
	_, err = c.Put(ctx, "k", []byte("v"), client.Context("not-a-context"))
	var bad *client.BadRequestError
	fmt.Println(errors.As(err, &bad), bad.Body.Code, "may have been applied:", client.MaybeApplied(err))
	// Output:
	// answered by the second endpoint: true
	// true bad_context may have been applied: false
}

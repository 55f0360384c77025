// Package certs holds dotkv's TLS material: the PEM files a node is given
// (Files), a Source that loads them, reloads them on demand (SIGHUP) or
// when they change on disk (Watch), and builds the tls.Configs of the
// node's listeners and clients from whatever is current at each
// handshake, and a generator of throwaway development certificates
// (GenerateDev, for `dotkv dev --tls`).
//
// # Trust model
//
// A cluster has one CA (the CA file may hold several certificates, for a
// rotation). A node's certificate must be signed by it, and serves both
// as its server certificate (client API over HTTPS, internode RPC) and as
// its client certificate towards other nodes.
//
//   - Internode RPC is mutual TLS: each end verifies the other's chain
//     against the cluster CA, and nothing else. Host names and IP SANs are
//     not checked: peers are dialled at the IP addresses gossip announces,
//     which are themselves not authenticated, so a name check would add
//     configuration (every certificate listing every address a node may
//     use) without adding assurance. The CA is the identity: a peer holding
//     a key certified by the cluster CA is a member of this cluster. The
//     certificate is not bound to the node ID a peer claims in its RPC
//     hello; any member can claim to be any other.
//   - The client API (HTTPS) requires no client certificate. Clients (the
//     CLI, the bench tool) trust the cluster CA and verify the server's
//     name or IP as usual; development certificates carry the node's IPs,
//     127.0.0.1 and "localhost".
//
// # Reloading
//
// A Source keeps the current certificate and CA pool behind an atomic
// pointer. Reload reads the three files again and swaps in the new
// material only if all of it is valid (the key matches the certificate
// and the certificate chains to the CA); otherwise the previous material
// stays in use. New handshakes use the new material; established
// connections keep the session they negotiated.
package certs

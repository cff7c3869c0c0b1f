// Package localsvc starts and removes the throw-away services that the tests
// (through internal/testenv) and `settle bench` (internal/bench) run
// against: a database of their own on an existing PostgreSQL server, dropped
// afterwards, and a private redis-server process on a 127.0.0.1 port. Every
// child process it starts is killed by the kernel when the process that
// started it dies (on Linux), so an interrupted run leaves none behind.
//
// It is linked into the settle binary through internal/bench; it touches no
// database and no Redis it did not create.
package localsvc

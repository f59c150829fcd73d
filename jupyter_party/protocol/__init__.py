"""Pure protocol code: no sockets, no event loop. Everything here is testable with bytes alone."""

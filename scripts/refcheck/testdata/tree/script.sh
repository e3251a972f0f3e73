# P31 (protocol.md section 2)

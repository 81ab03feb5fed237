package benchenv

// BigTxnResult is what one run of tests/bench/bigtxn measured: it prints
// it as the last line of its output (JSON), and tests/bigtxn_test.go
// asserts on it.
type BigTxnResult struct {
	Rows            int     `json:"rows"`
	SourceRows      int64   `json:"source_rows"`
	TargetRows      int64   `json:"target_rows"`
	SourceChecksum  int64   `json:"source_checksum"`
	TargetChecksum  int64   `json:"target_checksum"`
	InsertSeconds   float64 `json:"insert_seconds"` // the source transaction, BEGIN to COMMIT
	ApplySeconds    float64 `json:"apply_seconds"`  // source COMMIT returned → applied on the target
	BinlogBytes     uint64  `json:"binlog_bytes"`
	BinlogEvents    uint64  `json:"binlog_events"`
	TargetCommits   uint64  `json:"target_commits"`
	VmHWMKB         int64   `json:"vmhwm_kb"` // peak RSS of the streaming process
	PeakHeapInuse   uint64  `json:"peak_heap_inuse_bytes"`
	PeakGoSys       uint64  `json:"peak_go_sys_bytes"`
	RaceDetector    bool    `json:"race_detector"`
	SourcePosition  string  `json:"source_position"`
	AppliedPosition string  `json:"applied_position"`
}

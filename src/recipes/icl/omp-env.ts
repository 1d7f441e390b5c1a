// Imported before kiln's addon loads: libgomp reads OMP_WAIT_POLICY once, when it is loaded. With
// the default (spinning) policy, a 2-core machine shared with other processes loses most of each
// step in OpenMP barriers (measured 0.3 vs 2.3 steps/s on the d = 10 model); passive waiting fixes it.
process.env.OMP_WAIT_POLICY ??= 'passive';
export {};

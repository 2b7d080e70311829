/**
 * Entry point of the single-file binary. Worker processes (`serve --workers
 * N`) are forked from the same executable, so it runs the worker code in a
 * cluster worker and the command line everywhere else.
 */
import cluster from 'node:cluster';

if (cluster.isWorker) void import('../control/worker-main.js');
else void import('./main.js');

'use strict';
// Entry point: listen on $PORT (default 8080) and stop cleanly on SIGTERM (Kubernetes) and SIGINT.
const app = require('./app');

const port = Number.parseInt(process.env.PORT || '8080', 10);
const server = app.listen(port, () => {
  console.log(`node-hello listening on port ${port}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    console.log(`node-hello: ${signal}, shutting down`);
    server.close(() => process.exit(0));
  });
}

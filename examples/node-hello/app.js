'use strict';
// The HTTP application, separate from server.js so tests can drive it without a listening port.
const express = require('express');

const app = express();

app.get('/', (req, res) => {
  res.type('text/plain').send('hello from node-hello\n');
});

app.get('/healthz', (req, res) => {
  res.json({ status: 'ok' });
});

module.exports = app;

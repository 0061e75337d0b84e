'use strict';
const test = require('node:test');
const assert = require('node:assert');
const request = require('supertest');

const app = require('../app');

test('GET / says hello', async () => {
  const res = await request(app).get('/');
  assert.strictEqual(res.status, 200);
  assert.strictEqual(res.text, 'hello from node-hello\n');
});

test('GET /healthz reports ok', async () => {
  const res = await request(app).get('/healthz');
  assert.strictEqual(res.status, 200);
  assert.deepStrictEqual(res.body, { status: 'ok' });
});

test('unknown paths are 404', async () => {
  const res = await request(app).get('/nope');
  assert.strictEqual(res.status, 404);
});

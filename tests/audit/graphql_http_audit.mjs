#!/usr/bin/env node
/**
 * GraphQL over HTTP conformance audit of a Kabinet server.
 *
 * Runs graphql-http's `serverAudits` (the reference audits of the GraphQL over HTTP spec) against the URL
 * given as the only argument, prints every result (id, requirement, status, name, and the reason of a
 * failure) and a summary per requirement level, and exits 1 when any MUST, SHOULD or MAY audit fails
 * (2 on a usage error). tests/test_http_conformance.py runs it against a live server.
 *
 *   node tests/audit/graphql_http_audit.mjs http://127.0.0.1:8000/graphql
 */
import { serverAudits } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node graphql_http_audit.mjs <graphql endpoint URL>');
  process.exit(2);
}

const levels = ['MUST', 'SHOULD', 'MAY'];
const totals = Object.fromEntries(levels.map((level) => [level, { ok: 0, all: 0 }]));
const failures = [];

for (const audit of serverAudits({ url })) {
  const level = audit.name.split(' ', 1)[0];
  const result = await audit.fn();
  totals[level].all += 1;
  if (result.status === 'ok') {
    totals[level].ok += 1;
    console.log(`ok     ${result.id} ${result.name}`);
    continue;
  }
  let body = '';
  try {
    body = await result.response.text();
  } catch {
    body = '<unreadable body>';
  }
  const status = result.response?.status;
  const type = result.response?.headers?.get('content-type');
  console.log(`${result.status.padEnd(6)} ${result.id} ${result.name}`);
  console.log(`         reason: ${result.reason}`);
  console.log(`         response: ${status} ${type} ${body.slice(0, 300)}`);
  failures.push(result);
}

const summary = levels.map((level) => `${level} ${totals[level].ok}/${totals[level].all}`).join(', ');
console.log(`summary: ${summary}; ${failures.length} failing`);
process.exit(failures.length === 0 ? 0 : 1);

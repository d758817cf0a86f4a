// Drives a synclayer host through Nango's own Node client (@nangohq/node),
// as code written for Nango would: every call of SPEC §13, and Nango's
// webhook verifier on the webhooks the host sends to the receiver this
// script runs. integration/nango_test.go starts the host and runs it; any
// failed check exits non-zero with what was wrong.
//
// Environment: SYNCLAYER_URL, ADMIN_TOKEN, READ_TOKEN, SIGNING_KEY,
// RECEIVER_PORT, ACME_DIR (the acme connection's data folder).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import assert from 'node:assert/strict';
import { Nango } from '@nangohq/node';

const env = (name) => {
    const v = process.env[name];
    if (!v) throw new Error(`${name} is not set`);
    return v;
};
const host = env('SYNCLAYER_URL');
const signingKey = env('SIGNING_KEY');
const acmeDir = env('ACME_DIR');
const nango = new Nango({ host, apiKey: env('ADMIN_TOKEN'), webhookSigningKey: signingKey });
const reader = new Nango({ host, apiKey: env('READ_TOKEN') });
const key = 'contacts'; // unique in the host: the source name alone
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const steps = [];
const step = (name) => steps.push(name);

// waitFor polls fn until it returns a truthy value (60 s at most).
async function waitFor(what, fn) {
    const deadline = Date.now() + 60000;
    for (;;) {
        const v = await fn();
        if (v) return v;
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await sleep(50);
    }
}

// expectError checks that a call fails with Nango's error envelope.
async function expectError(what, p, status, code) {
    try {
        await p;
    } catch (err) {
        assert.equal(err.response?.status, status, `${what}: status ${err.response?.status} ${JSON.stringify(err.response?.data)}`);
        assert.equal(err.response.data?.error?.code, code, `${what}: ${JSON.stringify(err.response.data)}`);
        assert.ok(err.response.data.error.message, `${what}: no message`);
        return;
    }
    throw new Error(`${what}: succeeded, want ${status} ${code}`);
}

// The receiver keeps every webhook with its raw body and headers.
const received = [];
const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
        received.push({ body: Buffer.concat(chunks).toString('utf8'), headers: req.headers });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{}');
    });
});
await new Promise((resolve) => server.listen(Number(env('RECEIVER_PORT')), '127.0.0.1', resolve));

try {
    // Nango's import (no client method: its REST body).
    const imported = await fetch(`${host}/connections`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${env('ADMIN_TOKEN')}`, 'Content-Type': 'application/json' },
        body: JSON.stringify({
            provider_config_key: key,
            connection_id: 'acme',
            credentials: { type: 'NONE' },
            connection_config: { dir: acmeDir },
            metadata: { plan: 'pro' },
            tags: { region: 'eu' }
        })
    });
    assert.equal(imported.status, 201, `import: ${imported.status} ${await imported.text()}`);
    step('POST /connections (import)');

    // syncStatus until the first run of the connection completed.
    const first = await waitFor('the first run of acme', async () => {
        const st = await nango.syncStatus(key, '*', 'acme');
        const s = st.syncs.find((x) => x.name === 'files');
        return s?.status === 'SUCCESS' ? s : null;
    });
    assert.equal(first.connection_id, 'acme');
    assert.equal(first.recordCount.Contact, 5);
    assert.equal(first.latestResult.Contact.added, 5);
    assert.ok(first.finishedAt);
    step('syncStatus');
    const named = await nango.syncStatus(key, [{ name: 'files', variant: 'base' }], 'acme');
    assert.equal(named.syncs.length, 1);

    // listRecords: a cursor walk with limit.
    const walked = [];
    let cursor = null;
    let pages = 0;
    do {
        const page = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', limit: 2, cursor });
        pages++;
        for (const r of page.records) {
            assert.equal(r._metadata, undefined, '_metadata in a Nango record');
            const m = r._nango_metadata;
            assert.ok(m && m.cursor && m.first_seen_at && m.last_modified_at, JSON.stringify(r));
            assert.equal(m.last_action, 'ADDED');
            assert.equal(m.deleted_at, null);
            assert.equal(m.pruned_at, null);
            walked.push(r);
        }
        cursor = page.next_cursor;
    } while (cursor);
    assert.equal(pages, 3);
    assert.deepEqual(walked.map((r) => r.id), ['c1', 'c2', 'c3', 'c4', 'c5']);
    step('listRecords (cursor walk, limit)');

    const byIds = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', ids: ['c4', 'c2'] });
    assert.deepEqual(byIds.records.map((r) => r.id).sort(), ['c2', 'c4']);
    step('listRecords (ids)');
    const none = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', filter: 'updated,deleted' });
    assert.equal(none.records.length, 0);
    step('listRecords (filter)');

    // The receiver is up: the first run's webhook for acme arrives.
    await waitFor('the webhook of the first run', () => received.some((w) => JSON.parse(w.body).connectionId === 'acme'));

    // Change the data and triggerSync; modifiedAfter is inclusive.
    const firstModified = walked[0]._nango_metadata.last_modified_at;
    fs.writeFileSync(
        path.join(acmeDir, 'Contact.json'),
        JSON.stringify([
            { id: 'c1', name: 'Ann' },
            { id: 'c2', name: 'Bob, edited' },
            { id: 'c3', name: 'Cid' },
            { id: 'c4', name: 'Dee' },
            { id: 'c6', name: 'Eve' }
        ])
    );
    await nango.triggerSync(key, ['files'], 'acme', { reset: false });
    step('triggerSync');
    const second = await waitFor('the triggered run', async () => {
        const st = await nango.syncStatus(key, ['files'], 'acme');
        const s = st.syncs[0];
        return s.status === 'SUCCESS' && s.finishedAt !== first.finishedAt ? s : null;
    });
    assert.deepEqual(second.latestResult.Contact, { added: 1, updated: 1, deleted: 1 });
    const all = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact' });
    const changed = all.records.filter((r) => r._nango_metadata.last_action !== 'ADDED' || r.id === 'c6');
    const since = changed[0]._nango_metadata.last_modified_at;
    const delta = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', modifiedAfter: since });
    assert.deepEqual(delta.records.map((r) => r.id).sort(), ['c2', 'c5', 'c6']);
    const c5 = delta.records.find((r) => r.id === 'c5');
    assert.equal(c5._nango_metadata.last_action, 'DELETED');
    assert.ok(c5._nango_metadata.deleted_at);
    const again = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', modifiedAfter: firstModified });
    assert.equal(again.records.length, 6, 'modifiedAfter = the first run: every record (inclusive)');
    const deleted = await nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', filter: 'deleted' });
    assert.deepEqual(deleted.records.map((r) => r.id), ['c5']);
    step('listRecords (modifiedAfter, inclusive)');

    // A source without connections answers to "default".
    const posts = await nango.listRecords({ providerConfigKey: 'crm.notes', connectionId: 'default', model: 'Note' });
    assert.equal(posts.records.length, 2);

    // Connections: list, one (Nango's extra query parameters), never credentials.
    const list = await nango.listConnections();
    const acme = list.connections.find((c) => c.connection_id === 'acme');
    assert.ok(acme, JSON.stringify(list));
    assert.equal(acme.provider_config_key, key);
    assert.ok(list.connections.some((c) => c.connection_id === 'default' && c.provider_config_key === 'notes'));
    const filtered = await nango.listConnections({ integrationId: key, tags: { region: 'eu' } });
    assert.deepEqual(filtered.connections.map((c) => c.connection_id), ['acme']);
    step('listConnections');
    const conn = await nango.getConnection(key, 'acme', true, true);
    assert.equal(conn.connection_id, 'acme');
    assert.equal(conn.provider_config_key, key);
    assert.ok(conn.created_at);
    assert.deepEqual(conn.metadata, { plan: 'pro' });
    assert.equal(conn.credentials, undefined, 'credentials must never be shown');
    step('getConnection');

    // Metadata.
    await nango.setMetadata(key, 'acme', { a: 1 });
    assert.deepEqual(await nango.getMetadata(key, 'acme'), { a: 1 });
    step('setMetadata');
    await nango.updateMetadata(key, 'acme', { b: 2 });
    assert.deepEqual(await nango.getMetadata(key, 'acme'), { a: 1, b: 2 });
    step('updateMetadata');
    await nango.patchConnection({ connectionId: 'acme', provider_config_key: key }, { tags: { tier: 'gold' } });
    assert.deepEqual((await nango.getConnection(key, 'acme')).tags, { tier: 'gold' });

    // Pause and start.
    await nango.pauseSync(key, ['files'], 'acme');
    assert.equal((await nango.syncStatus(key, ['files'], 'acme')).syncs[0].status, 'PAUSED');
    await nango.startSync(key, ['files'], 'acme');
    assert.notEqual((await nango.syncStatus(key, ['files'], 'acme')).syncs[0].status, 'PAUSED');
    step('pauseSync, startSync');

    // Nango-shaped errors.
    await expectError('unknown connection', nango.getConnection(key, 'nobody'), 404, 'unknown_connection');
    await expectError('unknown integration', nango.listRecords({ providerConfigKey: 'nope', connectionId: 'acme', model: 'Contact' }), 404, 'unknown_provider_config');
    await expectError('bad limit', nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', limit: 100000 }), 400, 'invalid_query_params');
    await expectError('bad modifiedAfter', nango.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact', modifiedAfter: 'yesterday' }), 400, 'invalid_query_params');
    // The read token reads, and changes nothing.
    assert.equal((await reader.listRecords({ providerConfigKey: key, connectionId: 'acme', model: 'Contact' })).records.length, 6);
    await expectError('trigger with the read token', reader.triggerSync(key, ['files'], 'acme'), 403, 'forbidden');
    step('errors');

    // Every webhook received verifies with Nango's own verifier; the second
    // run's says what changed.
    const run2 = await waitFor('the webhook of the triggered run', () =>
        received.find((w) => {
            const b = JSON.parse(w.body);
            return b.connectionId === 'acme' && b.responseResults?.updated === 1;
        })
    );
    for (const w of received) {
        assert.ok(nango.verifyIncomingWebhookRequest(w.body, w.headers), `webhook does not verify: ${w.body}`);
        assert.equal(nango.verifyIncomingWebhookRequest(w.body.replace('"success":true', '"success":false'), w.headers), false, 'a changed body verifies');
        // Nango's deprecated scheme too (it prints a deprecation warning).
        assert.ok(nango.verifyWebhookSignature(w.headers['x-nango-signature'], JSON.parse(w.body)), `X-Nango-Signature does not verify: ${w.body}`);
    }
    const body = JSON.parse(run2.body);
    assert.equal(body.from, 'nango');
    assert.equal(body.type, 'sync');
    assert.equal(body.providerConfigKey, key);
    assert.equal(body.syncName, 'files');
    assert.equal(body.model, 'Contact');
    assert.equal(body.success, true);
    assert.equal(body.syncType, 'INCREMENTAL');
    assert.deepEqual(body.responseResults, { added: 1, deleted: 1, updated: 1 });
    assert.deepEqual(Object.keys(body), Object.keys(body).sort(), 'keys sorted');
    // modifiedAfter is exact: records of that model from it on are this run's changes.
    const fromHook = await nango.listRecords({ providerConfigKey: body.providerConfigKey, connectionId: body.connectionId, model: body.model, modifiedAfter: body.modifiedAfter });
    assert.deepEqual(fromHook.records.map((r) => r.id).sort(), ['c2', 'c5', 'c6']);
    step(`verifyIncomingWebhookRequest (${received.length} webhooks)`);

    // deleteConnection: gone, records with it.
    await nango.deleteConnection(key, 'acme');
    await expectError('deleted connection', nango.getConnection(key, 'acme'), 404, 'unknown_connection');
    step('deleteConnection');

    console.log(`nango client ${steps.length} checks passed: ${steps.join('; ')}`);
} finally {
    server.close();
}

// Stock Node.js clients call an rpcboot server: grpc-js (its own HTTP/2 stack, Node's http2) with
// types loaded by @grpc/proto-loader from the emitted .proto files, and Apache Thrift's npm
// package with code thrift-compiler generated (--gen js:node) from the emitted .thrift files.
// Values, optional fields, errors, deadlines, many calls in flight on one connection and large
// messages; with a certificate directory, the same over mutual TLS.
//
//   node clients.js IDL_DIR THRIFT_GEN_DIR GRPC_PORT THRIFT_PORT [CERT_DIR]
'use strict';

const fs = require('fs');
const path = require('path');

let grpc, protoLoader, thrift;
try {
  grpc = require('@grpc/grpc-js');
  protoLoader = require('@grpc/proto-loader');
  thrift = require('thrift');
} catch (e) {
  console.log(`FAIL: ${e.message}: run ./scripts/setup.sh (npm ci in tests/interop/node)`);
  process.exit(1);
}

const [idlDir, thriftGen, grpcPort, thriftPort, certDir] = process.argv.slice(2);
let checks = 0;

function check(condition, what) {
  if (!condition) {
    console.log(`FAIL: ${what}`);
    process.exit(1);
  }
  checks++;
}

// ---- gRPC (grpc-js) ----

function grpcClient() {
  const definition = protoLoader.loadSync('rich_service.proto', {
    includeDirs: [idlDir],
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const rich = grpc.loadPackageDefinition(definition).rich;
  const options = {'grpc.max_receive_message_length': 16 << 20};
  let credentials = grpc.credentials.createInsecure();
  if (certDir) {
    const read = (name) => fs.readFileSync(path.join(certDir, name));
    credentials = grpc.credentials.createSsl(read('ca.crt'), read('client.key'), read('client.crt'));
    // The server's certificate names localhost and 127.0.0.1; Node warns on an IP as SNI.
    options['grpc.ssl_target_name_override'] = 'localhost';
  }
  return new rich.RichService(`127.0.0.1:${grpcPort}`, credentials, options);
}

function unary(stub, method, request, timeoutMs = 5000) {
  return new Promise((resolve) => {
    stub[method](request, {deadline: Date.now() + timeoutMs}, (error, reply) =>
      resolve({error, reply}));
  });
}

async function grpcChecks() {
  const stub = grpcClient();
  const ok = async (method, request) => {
    const {error, reply} = await unary(stub, method, request);
    check(!error, `grpc ${method}: ${error && error.message}`);
    return reply;
  };
  check((await ok('Mix', {a: 'COLOR_RED', b: 'COLOR_GREEN'})).value === 'COLOR_BLUE', 'grpc: Mix');
  const reversed = await ok('Path', {points: [{x: 1, y: 2}, {x: 3, y: 4}], reversed: true});
  check(JSON.stringify(reversed.value) === '[{"x":3,"y":4},{"x":1,"y":2}]', 'grpc: Path');
  const histogram = await ok('Histogram', {words: ['a', 'b', 'a']});
  check(histogram.value.a === 2 && histogram.value.b === 1, 'grpc: Histogram');
  // Custom metadata, text and binary (grpc-js sends "-bin" values base64), reaches the handler.
  const metadata = new grpc.Metadata();
  metadata.add('x-tenant', 'acme');
  metadata.add('x-blob-bin', Buffer.from([0, 255, 10]));
  const seen = await new Promise((resolve) => {
    stub.Histogram({words: ['a']}, metadata, {deadline: Date.now() + 5000},
        (error, reply) => resolve({error, reply}));
  });
  check(!seen.error && JSON.stringify(seen.reply.value) ===
            '{"a":1,"metadata:x-blob-bin=00ff0a":1,"metadata:x-tenant=acme":1}',
  `grpc: metadata ${seen.error ? seen.error.message : JSON.stringify(seen.reply.value)}`);
  const transposed = await ok('Transpose', {m: [{values: [1, 2]}, {values: [3, 4]}]});
  check(JSON.stringify(transposed.value.map((r) => r.values)) === '[[1,3],[2,4]]', 'grpc: Transpose');
  const scalars = {
    flag: true, i8: -5, i16: -300, i32: 70000, i64: '-1099511627776', u8: 255, u16: 65535,
    u32: 4294967295, u64: '18446744073709551615', f32: 1.5, f64: -2.25, text: 'héllo 🍕',
    blob: Buffer.from([0, 1, 255]), color: 'COLOR_BLUE', light: 'LIGHT_OFF', level: 'LEVEL_HIGH',
    tier: 'TIER_GOLD',
  };
  const echoed = await ok('EchoScalars', scalars);
  for (const [k, v] of Object.entries(scalars)) {
    const same = Buffer.isBuffer(v) ? v.equals(echoed[k]) : echoed[k] === v;
    check(same, `grpc: EchoScalars field ${k}: ${echoed[k]} != ${v}`);
  }
  check(Number((await ok('Count', {})).value) >= 1, 'grpc: Count');
  const zero = await ok('Lookup', {key: 0});
  check(zero.value === 'key 0', 'grpc: Lookup(0) (a present zero)');
  const absent = await ok('Lookup', {});
  check(absent.value === undefined || absent.value === null, 'grpc: Lookup() without a key');
  check((await ok('Nearest', {origin: {x: 0, y: 0}})).value.x === 1, 'grpc: Nearest');
  check(!(await ok('Nearest', {})).value, 'grpc: Nearest()');
  const order = {lines: [{sku: 1, quantity: 2}, {sku: 3, quantity: 5}]};
  check((await ok('PlaceOrder', order)).value === '7', 'grpc: PlaceOrder');

  let r = await unary(stub, 'Notify', {id: -4, message: 'x'});
  check(r.error && r.error.code === grpc.status.FAILED_PRECONDITION &&
            r.error.details === 'negative id -4',
        `grpc: Notify(-4): ${r.error && r.error.message}`);
  r = await unary(stub, 'Notify', {id: 0, message: 'node'});
  check(r.error && r.error.code === grpc.status.INTERNAL, `grpc: Notify(0): ${r.error && r.error.message}`);
  r = await unary(stub, 'Notify', {id: 1500, message: 'slow'}, 100);
  check(r.error && r.error.code === grpc.status.DEADLINE_EXCEEDED,
        `grpc: deadline: ${r.error && r.error.message}`);
  r = await unary(stub, 'EchoScalars', {u8: 300});
  check(r.error && r.error.code === grpc.status.INVALID_ARGUMENT &&
            r.error.details.includes('out of range'),
        `grpc: u8=300: ${r.error && r.error.message}`);

  // 2,000 calls in flight together on the one HTTP/2 connection.
  const many = await Promise.all(Array.from({length: 2000}, (_, i) =>
    unary(stub, 'Lookup', {key: i}, 20000)));
  const wrong = many.filter((m, i) => m.error || m.reply.value !== `key ${i}`);
  check(wrong.length === 0, `grpc: 2000 concurrent calls, ${wrong.length} failed or wrong: ` +
            `${wrong.length && (wrong[0].error ? wrong[0].error.message : wrong[0].reply.value)}`);
  // 4 MiB out and back, ten at a time (flow control both ways; twenty would pass the server's
  // 64 MiB of unsent replies per connection, server.grpc_max_unsent_bytes).
  const big = 'x'.repeat(4 << 20);
  const bigs = await Promise.all(Array.from({length: 10}, () =>
    unary(stub, 'Histogram', {words: [big, big, 'a']}, 30000)));
  check(bigs.every((b) => !b.error && b.reply.value[big] === 2 && b.reply.value.a === 1),
        `grpc: 4 MiB messages: ${bigs.map((b) => b.error && b.error.message).find((m) => m)}`);
  stub.close();
}

// ---- Thrift (the npm package, thrift-compiler's js:node code) ----

function thriftTypes() {
  return {
    RichService: require(path.join(thriftGen, 'RichService')),
    AdminService: require(path.join(thriftGen, 'AdminService')),
    common: require(path.join(thriftGen, 'common_types_types')),
    types: require(path.join(thriftGen, 'rich_service_types')),
  };
}

function thriftConnection(protocol) {
  const options = {transport: thrift.TFramedTransport, protocol, max_attempts: 1};
  if (!certDir) return thrift.createConnection('127.0.0.1', Number(thriftPort), options);
  const read = (name) => fs.readFileSync(path.join(certDir, name));
  Object.assign(options, {ca: read('ca.crt'), cert: read('client.crt'), key: read('client.key'),
                          servername: 'localhost'});
  return thrift.createSSLConnection('127.0.0.1', Number(thriftPort), options);
}

async function thriftChecks(name, protocol) {
  const {RichService, AdminService, common, types} = thriftTypes();
  const connection = thriftConnection(protocol);
  let connectionError = null;
  connection.on('error', (e) => { connectionError = e; });
  const multiplexer = new thrift.Multiplexer();
  const rich = multiplexer.createClient('rich.RichService', RichService, connection);
  const admin = multiplexer.createClient('rich.AdminService', AdminService, connection);
  const c = common.Color;
  check(await rich.Mix(c.kRed, c.kGreen) === c.kBlue, `thrift ${name}: Mix`);
  const p = await rich.Path([new common.Point({x: 1, y: 2}), new common.Point({x: 3, y: 4})], true);
  check(p.length === 2 && p[0].x === 3 && p[1].y === 2, `thrift ${name}: Path`);
  const h = await rich.Histogram(['a', 'b', 'a']);
  check(h.a === 2 && h.b === 1, `thrift ${name}: Histogram`);
  const t = await rich.Transpose([[1, 2], [3, 4]]);
  check(JSON.stringify(t) === '[[1,3],[2,4]]', `thrift ${name}: Transpose`);
  const order = new types.Order({lines: [new types.Line({sku: 1, quantity: 2}),
                                         new types.Line({sku: 3, quantity: 5})], by_code: {}});
  check(String(await rich.PlaceOrder(order)) === '7', `thrift ${name}: PlaceOrder`);
  const stamp = await rich.Now();
  check(String(stamp.seconds) === '1795422103' && stamp.zone === 'UTC', `thrift ${name}: Now`);
  check((await rich.Lookup(8)).value === 'key 8', `thrift ${name}: Lookup(8)`);
  check((await rich.Lookup(null)).value === null, `thrift ${name}: Lookup(null)`);
  check((await rich.Nearest(new common.Point({x: 4, y: 5}))).value.x === 5, `thrift ${name}: Nearest`);
  check((await rich.Nearest(null)).value === null, `thrift ${name}: Nearest(null)`);
  for (const [id, code, message] of [[-4, 9, 'negative id -4'], [0, 13, 'boom: node']]) {
    let error = null;
    try {
      await rich.Notify(id, 'node', c.kRed);
    } catch (e) {
      error = e;
    }
    check(error instanceof types.RpcError && error.code === code && error.message === message,
          `thrift ${name}: Notify(${id}) must raise RpcError ${code}: ${error}`);
  }
  check(await admin.Version() === '1.2.3', `thrift ${name}: multiplexed AdminService`);
  // 500 calls written back to back on the one connection before any reply is read.
  const replies = await Promise.all(Array.from({length: 500}, (_, i) => rich.Lookup(i)));
  check(replies.every((r, i) => r.value === `key ${i}`), `thrift ${name}: 500 pipelined calls`);
  check(connectionError === null, `thrift ${name}: connection error ${connectionError}`);
  connection.end();
}

(async () => {
  await grpcChecks();
  await thriftChecks('compact', thrift.TCompactProtocol);
  await thriftChecks('binary', thrift.TBinaryProtocol);
  console.log(`node interop: ${checks} checks passed (grpc-js, thrift compact, thrift binary` +
              `${certDir ? ', over mutual TLS' : ''})`);
  process.exit(0);
})().catch((e) => {
  console.log(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});

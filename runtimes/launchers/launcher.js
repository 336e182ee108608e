// snapinvoker Node.js launcher (see runtimes/doc.go for the framing).
//
// Started knowing nothing. Reads one init line on fd 0 ({"name","main","binary","code","env"}),
// loads the action as openwhisk-runtime-nodejs does and acks {"ok":true} (or {"error": ...}) on
// fd 3; then, for every run line, calls main and writes one reply line on fd 3. After init and
// after every run it writes the end marker on stdout and on stderr BEFORE the fd 3 line.
//
// fd 0 is read synchronously between activations: while the launcher waits for work, no timer or
// callback left over by the previous activation runs, so every log line lands between one run
// line and the markers that close it, and a frozen or snapshotted launcher is quiescent.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');

const MARKER = 'XXX_THE_END_OF_A_WHISK_ACTIVATION_XXX';
const sleeper = new Int32Array(new SharedArrayBuffer(4));

let pending = Buffer.alloc(0);

// readLine returns the next line of fd 0 as a string, or null at end of input.
function readLine() {
  for (;;) {
    const nl = pending.indexOf(10);
    if (nl >= 0) {
      const line = pending.subarray(0, nl).toString('utf8');
      pending = pending.subarray(nl + 1);
      return line;
    }
    const buf = Buffer.allocUnsafe(1 << 16);
    let n;
    try {
      n = fs.readSync(0, buf, 0, buf.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN') { Atomics.wait(sleeper, 0, 0, 2); continue; }
      if (e.code === 'EOF') n = 0; else throw e;
    }
    if (n === 0) {
      if (pending.length === 0) return null;
      const line = pending.toString('utf8');
      pending = Buffer.alloc(0);
      return line;
    }
    pending = Buffer.concat([pending, buf.subarray(0, n)]);
  }
}

function writeAll(fd, s) {
  const b = Buffer.from(s, 'utf8');
  let off = 0;
  while (off < b.length) {
    try {
      off += fs.writeSync(fd, b, off, b.length - off);
    } catch (e) {
      if (e.code === 'EAGAIN') { Atomics.wait(sleeper, 0, 0, 2); continue; }
      throw e;
    }
  }
}

// written resolves once s, and everything written to stream before it, has reached the pipe.
function written(stream, s) {
  return new Promise((resolve) => stream.write(s, () => resolve()));
}

// reply ends a step: markers on both log streams first, then one line on fd 3. The markers go
// through process.stdout/stderr, behind anything console.log queued (libuv queues pipe writes
// once the pipe is full), and the reply waits until they are out.
async function reply(line) {
  await written(process.stdout, MARKER + '\n');
  await written(process.stderr, MARKER + '\n');
  writeAll(3, line + '\n');
}

function envString(v) {
  if (typeof v === 'string') return v;
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

// ---- archives (zip and tar.gz), extracted with the standard library only ----

function safeJoin(dir, name) {
  const norm = path.normalize(name);
  if (path.isAbsolute(norm) || norm === '..' || norm.startsWith('..' + path.sep)) {
    throw new Error(`archive entry escapes the action directory: ${name}`);
  }
  return path.join(dir, norm);
}

function writeEntry(dir, name, data, mode) {
  const target = safeJoin(dir, name);
  if (name.endsWith('/')) { fs.mkdirSync(target, { recursive: true }); return; }
  fs.mkdirSync(path.dirname(target), { recursive: true });
  fs.writeFileSync(target, data, { mode: (mode & 0o111) ? 0o755 : 0o644 });
}

function unzip(buf, dir) {
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 22 - 65535); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) { eocd = i; break; }
  }
  if (eocd < 0) throw new Error('not a zip file: no end of central directory');
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  for (let k = 0; k < count; k++) {
    if (p + 46 > buf.length || buf.readUInt32LE(p) !== 0x02014b50) throw new Error('corrupt zip central directory');
    const method = buf.readUInt16LE(p + 10);
    const csize = buf.readUInt32LE(p + 20);
    const nlen = buf.readUInt16LE(p + 28);
    const elen = buf.readUInt16LE(p + 30);
    const clen = buf.readUInt16LE(p + 32);
    const mode = buf.readUInt32LE(p + 38) >>> 16;
    const loff = buf.readUInt32LE(p + 42);
    const name = buf.subarray(p + 46, p + 46 + nlen).toString('utf8');
    p += 46 + nlen + elen + clen;
    if (loff + 30 > buf.length || buf.readUInt32LE(loff) !== 0x04034b50) throw new Error(`corrupt zip entry ${name}`);
    const start = loff + 30 + buf.readUInt16LE(loff + 26) + buf.readUInt16LE(loff + 28);
    const raw = buf.subarray(start, start + csize);
    let data;
    if (method === 0) data = raw;
    else if (method === 8) data = zlib.inflateRawSync(raw);
    else throw new Error(`zip entry ${name}: compression method ${method} is not supported`);
    writeEntry(dir, name, data, mode);
  }
}

function untar(buf, dir) {
  const str = (a, b) => { const s = buf.subarray(a, b); const z = s.indexOf(0); return (z >= 0 ? s.subarray(0, z) : s).toString('utf8'); };
  for (let p = 0; p + 512 <= buf.length;) {
    const name = str(p, p + 100);
    if (name === '') break;
    const size = parseInt(str(p + 124, p + 136).trim() || '0', 8);
    const mode = parseInt(str(p + 100, p + 108).trim() || '0', 8);
    const type = String.fromCharCode(buf[p + 156]);
    const prefix = str(p + 345, p + 500);
    const full = prefix ? `${prefix}/${name}` : name;
    const data = buf.subarray(p + 512, p + 512 + size);
    if (type === '0' || type === '\0') writeEntry(dir, full, data, mode);
    else if (type === '5') writeEntry(dir, full.endsWith('/') ? full : full + '/', null, mode);
    p += 512 + Math.ceil(size / 512) * 512;
  }
}

// ---- init ----

function assertFunction(fn, main) {
  if (typeof fn !== 'function') throw new Error(`Action entrypoint '${main}' is not a function.`);
  return fn;
}

function loadPlain(code, main) {
  if (!/^[A-Za-z_$][\w$]*$/.test(main)) throw new Error(`Name of main function is not valid: ${main}`);
  const mod = { exports: {} };
  // The code runs in a function scope, as upstream's eval does: a top-level `function main`
  // is found by name; otherwise module.exports.<main> or exports.<main>.
  const wrapped = new Function('exports', 'require', 'module', '__filename', '__dirname',
    `${code}\n;return (typeof ${main} === 'function') ? ${main} : undefined;`);
  const found = wrapped.call(mod.exports, mod.exports, require, mod, path.join(process.cwd(), 'index.js'), process.cwd());
  return assertFunction(found || mod.exports[main] || (main === 'main' && typeof mod.exports === 'function' ? mod.exports : undefined), main);
}

function loadArchive(code, main) {
  const buf = Buffer.from(code, 'base64');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'action-'));
  if (buf.length >= 4 && buf.readUInt32LE(0) === 0x04034b50) unzip(buf, dir);
  else if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) untar(zlib.gunzipSync(buf), dir);
  else throw new Error('The action code is neither a zip nor a tar.gz archive.');
  let file, fn = main;
  const dot = main.lastIndexOf('.');
  if (dot > 0 && dot < main.length - 1) { file = main.slice(0, dot); fn = main.slice(dot + 1); }
  process.chdir(dir);
  if (file === undefined && !fs.existsSync('package.json') && !fs.existsSync('index.js')) {
    throw new Error('Zipped actions must contain either package.json or index.js at the root.');
  }
  const exported = require(file === undefined ? dir : path.join(dir, file));
  return assertFunction(exported[fn], main);
}

function init(msg) {
  if (msg === null || typeof msg !== 'object') throw new Error('init line must be a JSON object');
  if (typeof msg.code !== 'string' || msg.code === '') {
    const e = new Error('Missing main/no code to execute.'); e.plain = true; throw e;
  }
  const main = (typeof msg.main === 'string' && msg.main !== '') ? msg.main : 'main';
  const env = msg.env || {};
  if (typeof env !== 'object') throw new Error('env must be an object');
  for (const k of Object.keys(env)) process.env[k] = envString(env[k]);
  return msg.binary ? loadArchive(msg.code, main) : loadPlain(msg.code, main);
}

// ---- run ----

function serializeError(err) {
  if (err instanceof Error) {
    const out = { name: err.name, message: err.message, stack: err.stack };
    for (const k of Object.keys(err)) out[k] = err[k];
    return out;
  }
  return err === undefined ? {} : err;
}

// runOne returns [status, body] as the nodejs runtime answers /run.
async function runOne(fn, args) {
  if (args === null || typeof args !== 'object' || Array.isArray(args)) {
    return [403, { error: 'The run line must be a JSON object.' }];
  }
  const value = (args.value === undefined || args.value === null) ? {} : args.value;
  if (value === null || typeof value !== 'object') return [403, { error: 'The value must be a JSON object.' }];
  for (const k of Object.keys(args)) {
    if (k !== 'value' && typeof args[k] === 'string') process.env['__OW_' + k.toUpperCase()] = args[k];
  }
  let r;
  try {
    r = fn(value);
  } catch (e) {
    console.error(e);
    return [502, { error: `An error has occurred: ${e}` }];
  }
  if (r !== null && typeof r === 'object' && typeof r.then === 'function') {
    try { r = await r; } catch (e) { return [200, { error: serializeError(e) }]; }
  }
  if (r === undefined) r = {};
  if (r === null || typeof r !== 'object') return [502, { error: 'The action did not return a dictionary.' }];
  return [200, r];
}

function encode(status, body) {
  let s;
  try { s = JSON.stringify(body); } catch (e) {
    return `#502 ${JSON.stringify({ error: `An error has occurred: ${e}` })}`;
  }
  return status === 200 ? s : `#${status} ${s}`;
}

async function loop() {
  // Create the stdio streams now (Node builds them lazily, ~10 ms): that cost belongs to the
  // runtime's boot, which a prewarmed or snapshotted launcher has already paid, not to /init.
  void process.stdout;
  void process.stderr;
  const first = readLine();
  if (first === null) process.exit(0);
  let fn;
  try {
    fn = init(JSON.parse(first));
  } catch (e) {
    const text = e && e.plain ? e.message : `Initialization has failed due to: ${e && e.stack ? e.stack : e}`;
    if (!(e && e.plain)) console.error(text);
    await reply(JSON.stringify({ error: text }));
    process.exit(1);
  }
  await reply('{"ok":true}');
  for (;;) {
    const line = readLine();
    if (line === null) process.exit(0);
    let args;
    try { args = JSON.parse(line); } catch (e) { await reply(encode(400, { error: `invalid run line: ${e.message}` })); continue; }
    const [status, body] = await runOne(fn, args);
    await reply(encode(status, body));
  }
}

loop().catch((e) => { console.error(e); process.exit(70); });

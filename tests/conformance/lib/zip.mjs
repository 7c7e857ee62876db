// A .zip writer for tests that upload skill bundles as a client would.

/** A .zip of stored (uncompressed) files: `[{path, content, mode?}]`, `mode` a Unix mode with
 * its file type (default a regular file, 0o100644). */
export function zipOf(files) {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc32 = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = table[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const parts = [], central = [];
  let offset = 0;
  for (const { path, content, mode = 0o100644 } of files) {
    const name = Buffer.from(path), data = Buffer.from(content);
    const common = Buffer.alloc(26);
    common.writeUInt16LE(20, 0); common.writeUInt32LE(crc32(data), 10);
    common.writeUInt32LE(data.length, 14); common.writeUInt32LE(data.length, 18); common.writeUInt16LE(name.length, 22);
    const local = Buffer.concat([Buffer.from([0x50, 0x4b, 3, 4]), common, name, data]);
    const entry = Buffer.alloc(46);
    entry.writeUInt32LE(0x02014b50, 0); entry.writeUInt16LE((3 << 8) | 20, 4); common.copy(entry, 6);
    entry.writeUInt32LE((mode << 16) >>> 0, 38); entry.writeUInt32LE(offset, 42);
    central.push(Buffer.concat([entry, name]));
    parts.push(local);
    offset += local.length;
  }
  const cd = Buffer.concat(central), end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(files.length, 8); end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...parts, cd, end]));
}

// MD5 (RFC 1321), incremental, for the upload manager's Content-MD5 of each part.
// Web Crypto has no MD5, and has no digest at all outside secure contexts (a Folio on a
// LAN address over plain http): this runs everywhere, at a few hundred MB/s.

const SHIFTS = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const K = new Int32Array(64);
for (let i = 0; i < 64; i++) K[i] = Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) | 0;

export class Md5 {
  constructor() {
    this.h = new Int32Array([0x67452301, 0xefcdab89 | 0, 0x98badcfe | 0, 0x10325476]);
    this.tail = new Uint8Array(64);
    this.tailLength = 0;
    this.total = 0;
    this.w = new Int32Array(16);
  }

  /** Add bytes (a Uint8Array or an ArrayBuffer). */
  update(data) {
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    const n = bytes.length;
    this.total += n;
    let i = 0;
    if (this.tailLength) {
      const take = Math.min(64 - this.tailLength, n);
      this.tail.set(bytes.subarray(0, take), this.tailLength);
      this.tailLength += take;
      i = take;
      if (this.tailLength < 64) return this;
      this.block(this.tail, 0);
      this.tailLength = 0;
    }
    if ((bytes.byteOffset + i) % 4 === 0 && n - i >= 64) {
      // Aligned: read the words straight from the buffer (little-endian, as every browser is).
      const blocks = (n - i) >> 6;
      const words = new Int32Array(bytes.buffer, bytes.byteOffset + i, blocks * 16);
      for (let k = 0; k < blocks * 16; k += 16) this.words(words, k);
      i += blocks * 64;
    }
    for (; i + 64 <= n; i += 64) this.block(bytes, i);
    if (i < n) {
      this.tail.set(bytes.subarray(i), 0);
      this.tailLength = n - i;
    }
    return this;
  }

  block(bytes, offset) {
    const w = this.w;
    for (let j = 0, p = offset; j < 16; j++, p += 4) {
      w[j] = bytes[p] | (bytes[p + 1] << 8) | (bytes[p + 2] << 16) | (bytes[p + 3] << 24);
    }
    this.words(w, 0);
  }

  words(w, o) {
    const h = this.h;
    let a = h[0], b = h[1], c = h[2], d = h[3], f, t, s, x;
    for (let i = 0; i < 16; i++) {
      f = (b & c) | (~b & d);
      s = SHIFTS[i & 3];
      x = (a + f + K[i] + w[o + i]) | 0;
      t = d; d = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
      a = t;
    }
    for (let i = 16; i < 32; i++) {
      f = (d & b) | (~d & c);
      s = SHIFTS[4 + (i & 3)];
      x = (a + f + K[i] + w[o + ((5 * i + 1) & 15)]) | 0;
      t = d; d = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
      a = t;
    }
    for (let i = 32; i < 48; i++) {
      f = b ^ c ^ d;
      s = SHIFTS[8 + (i & 3)];
      x = (a + f + K[i] + w[o + ((3 * i + 5) & 15)]) | 0;
      t = d; d = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
      a = t;
    }
    for (let i = 48; i < 64; i++) {
      f = c ^ (b | ~d);
      s = SHIFTS[12 + (i & 3)];
      x = (a + f + K[i] + w[o + ((7 * i) & 15)]) | 0;
      t = d; d = c; c = b;
      b = (b + ((x << s) | (x >>> (32 - s)))) | 0;
      a = t;
    }
    h[0] = (h[0] + a) | 0;
    h[1] = (h[1] + b) | 0;
    h[2] = (h[2] + c) | 0;
    h[3] = (h[3] + d) | 0;
  }

  /** The 16-byte digest (the hash cannot be updated afterwards). */
  digest() {
    const bits = this.total * 8;
    const padding = new Uint8Array(((this.tailLength < 56 ? 56 : 120) - this.tailLength) + 8);
    padding[0] = 0x80;
    const view = new DataView(padding.buffer);
    view.setUint32(padding.length - 8, bits % 2 ** 32, true);
    view.setUint32(padding.length - 4, Math.floor(bits / 2 ** 32), true);
    this.update(padding);
    const out = new Uint8Array(16);
    const outView = new DataView(out.buffer);
    for (let i = 0; i < 4; i++) outView.setInt32(i * 4, this.h[i], true);
    return out;
  }
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

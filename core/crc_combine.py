"""CRC combination: the CRC of A+B from crc(A), crc(B) and len(B), without the bytes.

S3's FULL_OBJECT multipart checksums are the CRC of the whole object, which Complete
must produce from the parts' CRCs (re-reading gigabytes is not an option). This is
zlib's crc32_combine method (multiplication by x^(8*len) modulo the polynomial, in
the reflected bit order these CRCs use), generalised to any reflected CRC whose
initial value equals its final XOR: CRC32 (zlib), CRC32C (Castagnoli) and CRC64NVME.

Pure arithmetic on Python ints; no dependency, so it lives in core.
"""

from __future__ import annotations

from functools import lru_cache


class ReflectedCrc:
    """Combination arithmetic for one reflected CRC polynomial of `width` bits."""

    def __init__(self, name: str, width: int, reflected_polynomial: int) -> None:
        self.name = name
        self.width = width
        self.polynomial = reflected_polynomial
        self._top = 1 << (width - 1)  # x^0 in the reflected representation
        self._mask = (1 << width) - 1
        # _powers[k] = x^(2^k) mod P; 64 entries cover any length up to 2^61 bytes.
        powers = [1 << (width - 2)]  # x^1
        for _ in range(63):
            powers.append(self._multiply(powers[-1], powers[-1]))
        self._powers = tuple(powers)
        # Parts of one upload mostly share a size: x^(8*len) is worth remembering.
        self._shift = lru_cache(maxsize=64)(self._x_to_8n)

    def _multiply(self, a: int, b: int) -> int:
        """a * b modulo P (both reflected)."""
        product = 0
        bit = self._top
        while a:
            if a & bit:
                product ^= b
                a ^= bit
            bit >>= 1
            b = (b >> 1) ^ self.polynomial if b & 1 else b >> 1
        return product

    def _x_to_8n(self, length: int) -> int:
        """x^(8*length) mod P."""
        result = self._top
        n, k = length, 3  # 8*length = length * 2^3
        while n:
            if n & 1:
                result = self._multiply(self._powers[k], result)
            n >>= 1
            k += 1
        return result

    def combine(self, crc_a: int, crc_b: int, length_b: int) -> int:
        """crc(A + B) given crc(A), crc(B) and len(B) in bytes."""
        if length_b < 0:
            raise ValueError("length_b must not be negative")
        return self._multiply(self._shift(length_b), crc_a & self._mask) ^ (crc_b & self._mask)


CRC32 = ReflectedCrc("CRC32", 32, 0xEDB88320)
CRC32C = ReflectedCrc("CRC32C", 32, 0x82F63B78)
CRC64NVME = ReflectedCrc("CRC64NVME", 64, 0x9A6C9329AC4BC9B5)

BY_NAME = {crc.name: crc for crc in (CRC32, CRC32C, CRC64NVME)}

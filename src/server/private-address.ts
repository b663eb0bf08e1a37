// Which IP addresses a webhook may not reach: anything that is not a public unicast address, in
// every spelling. An IPv4 address may come as dotted decimal or in inet_aton's other forms
// (2130706433, 0x7f.1, 0177.0.0.1, 127.1); an IPv6 address may embed an IPv4 one (IPv4-mapped
// ::ffff:a.b.c.d, which the URL parser writes as ::ffff:7f00:1; IPv4-translated ::ffff:0:a.b.c.d;
// NAT64 64:ff9b::a.b.c.d; 6to4 2002:AABB:CCDD::), and those are judged by the IPv4 address they
// reach. The ranges are IANA's special-purpose registries (RFC 6890 and successors); IPv6 outside
// global unicast (2000::/3) is refused whole, and so are IPv4-compatible addresses (::a.b.c.d,
// deprecated), the local-use NAT64 prefix and the IETF protocol block 2001::/23 (Teredo among them).

import { BlockList, isIP } from "node:net";

const V4_BLOCKED: readonly [string, number][] = [
  ["0.0.0.0", 8], // "this network", 0.0.0.0
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // carrier-grade NAT
  ["127.0.0.0", 8], // loopback
  ["169.254.0.0", 16], // link-local (cloud metadata services)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, broadcast
];

const V6_BLOCKED: readonly [string, number][] = [
  ["::", 96], // unspecified, loopback, IPv4-compatible (deprecated)
  ["64:ff9b:1::", 48], // local-use NAT64 (RFC 8215)
  ["100::", 64], // discard-only
  ["2001::", 23], // IETF protocol assignments: Teredo, benchmarking, ORCHID...
  ["2001:db8::", 32], // documentation
  ["3fff::", 20], // documentation (RFC 9637)
  ["fc00::", 7], // unique-local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated)
  ["ff00::", 8], // multicast
];

const blocked = new BlockList();
for (const [net, prefix] of V4_BLOCKED) blocked.addSubnet(net, prefix, "ipv4");
for (const [net, prefix] of V6_BLOCKED) blocked.addSubnet(net, prefix, "ipv6");

/** One inet_aton part: decimal, octal (leading 0) or hex (0x); null when it is none of them. */
function parsePart(part: string): number | null {
  if (/^0x[0-9a-f]*$/i.test(part)) return part.length === 2 ? 0 : Number.parseInt(part, 16);
  if (/^0[0-7]*$/.test(part)) return Number.parseInt(part, 8);
  if (/^[1-9][0-9]*$/.test(part)) return Number(part);
  return null;
}

/** An IPv4 address in any of inet_aton's forms (a, a.b, a.b.c, a.b.c.d) as a 32-bit number. */
export function parseIPv4(s: string): number | null {
  const parts = s.replace(/\.$/, "").split(".");
  if (parts.length > 4) return null;
  const values = parts.map(parsePart);
  if (values.some((v) => v === null)) return null;
  const nums = values as number[];
  const last = nums.pop() as number;
  if (nums.some((v) => v > 255) || last >= 2 ** (8 * (4 - nums.length))) return null;
  return nums.reduce((acc, v, i) => acc + v * 2 ** (8 * (3 - i)), 0) + last;
}

function dotted(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join(".");
}

/** The eight 16-bit groups of an IPv6 address (zone id dropped); null when it is not one. */
export function parseIPv6(s: string): number[] | null {
  const ip = s.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  if (isIP(ip) !== 6) return null;
  let text = ip.toLowerCase();
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const n = parseIPv4(v4[1] as string) as number;
    text = `${text.slice(0, v4.index)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const groups = (part: string) => (part === "" ? [] : part.split(":").map((g) => parseInt(g, 16)));
  const front = groups(head);
  if (tail === undefined) return front;
  const back = groups(tail);
  return [...front, ...new Array<number>(8 - front.length - back.length).fill(0), ...back];
}

/** The IPv4 address an IPv6 address reaches (mapped, translated, NAT64, 6to4), or null. */
export function embeddedIPv4(groups: readonly number[]): string | null {
  const g = groups as [number, number, number, number, number, number, number, number];
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  const join32 = (hi: number, lo: number) => dotted(hi * 0x10000 + lo);
  // ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (translated), 64:ff9b::a.b.c.d (NAT64).
  if (zeros(0, 5) && g[5] === 0xffff) return join32(g[6], g[7]);
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return join32(g[6], g[7]);
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return join32(g[6], g[7]);
  if (g[0] === 0x2002) return join32(g[1], g[2]); // 6to4
  return null;
}

/** True unless the address (any spelling, brackets allowed) is a public unicast one. Not an IP: false. */
export function isPrivateAddress(address: string): boolean {
  const host = address.replace(/^\[|\]$/g, "");
  const v4 = isIP(host) === 6 ? null : parseIPv4(host);
  if (v4 !== null) return blocked.check(dotted(v4), "ipv4");
  const v6 = parseIPv6(host);
  if (v6 === null) return false;
  const embedded = embeddedIPv4(v6);
  if (embedded !== null) return blocked.check(embedded, "ipv4");
  const canonical = v6.map((x) => x.toString(16)).join(":");
  // Outside global unicast (2000::/3) nothing is a public address.
  return (v6[0] as number) >> 13 !== 1 || blocked.check(canonical, "ipv6");
}

/** True for a name that means this machine without DNS ("localhost", "x.localhost", "localhost."). */
export function isLocalName(host: string): boolean {
  const name = host.toLowerCase().replace(/\.+$/, "");
  return name === "localhost" || name.endsWith(".localhost");
}

// The server's SBD rule (diemthi.sbd): eight ASCII digits. What people paste is forgiven:
// spaces, dots and dashes between the digits ("01 000 123", "01.000.123").
export const LENGTH = 8;

/** The SBD in canonical form, or null when it cannot be one (wrong length, letters). */
export function normalize(text) {
  const compact = String(text).replace(/[\s.\-]/g, "");
  return /^[0-9]{8}$/.test(compact) ? compact : null;
}

// WebSocket close codes: the same list as jupyter_party/protocol/codes.py (CloseCode and
// REFUSALS); tests/test_codes.py fails when the two differ.

export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  HANDLER_ERROR: 1011,
  SERVICE_RESTART: 1012,
  OVERLOADED: 1013,
  BAD_REQUEST: 4400,
  UNAUTHENTICATED: 4401,
  FORBIDDEN: 4403,
  UNKNOWN_PARTY: 4404,
  EPOCH_CHANGED: 4409,
});

/** The server's refusals: reconnecting cannot help. */
export const REFUSALS = Object.freeze([
  CloseCode.BAD_REQUEST,
  CloseCode.UNAUTHENTICATED,
  CloseCode.FORBIDDEN,
  CloseCode.UNKNOWN_PARTY,
]);

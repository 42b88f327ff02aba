/*
 * ringkv-membership's agent: the hooks the service runtime calls
 * (lib/service/service.h), around the member table (table.h), the gossip
 * thread, the RPC handlers and the events socket. docs/membership.md
 * describes the protocol and the config section:
 *
 *	membership:
 *	  data_dir: /var/lib/ringkv/membership  # identity; see config.c
 *	  seeds: [tcp://10.0.0.1:7300]          # agents to join through
 *	  advertise: tcp://10.0.0.5:7300        # how peers reach us
 *	  events_listen: tcp://0.0.0.0:7301     # pub0 socket for changes
 *	  weight: 1                             # ring weight of this node
 *	  round: 1s                             # gossip period
 *	  fanout: 3                             # peers per round
 *	  suspect_timeout: 5s                   # stalled -> suspect
 *	  isolation_timeout: 3s                 # silent -> not caught up
 *	  probe_timeout: 1s                     # call deadline
 *	  forget_after: 1h                      # left/down dropped
 *	  health_check: tcp://127.0.0.1:7200    # local service; "": none
 *	  vnodes_per_weight: 2048               # for GetRing
 */
#ifndef RK_MS_AGENT_H
#define RK_MS_AGENT_H

#include "service/service.h"

rk_status_t rk_ms_configure(rk_service_t *svc, rk_config_t *cfg);
rk_status_t rk_ms_start(rk_service_t *svc);
void rk_ms_stop(rk_service_t *svc);

/* Frees what the agent still holds; call after rk_service_main returned
 * (handlers may run until the RPC server is freed, after the stop hook). */
void rk_ms_cleanup(void);

#endif

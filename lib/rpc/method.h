/*
 * Method identity on the wire.
 *
 * A method is named on the wire by (service id, method id), both numbers
 * fixed in proto/ringkv/v1/: the service id is the value of ServiceId named
 * SERVICE_<SERVICE> and the method id the value of the service's
 * <Service>Method enum named <SERVICE>_<METHOD> (UPPER_SNAKE_CASE of the
 * proto names). rk_rpc_method_resolve() derives both from the descriptors
 * protoc-c generates, so the .proto file stays the one source of truth and
 * the position of an rpc in its file never matters.
 */
#ifndef RK_RPC_METHOD_H
#define RK_RPC_METHOD_H

#include <protobuf-c/protobuf-c.h>
#include <stdint.h>

#include <ringkv/status.h>

typedef struct rk_rpc_method {
	uint32_t service_id;                           /* ServiceId value */
	uint32_t method_id;                            /* <Service>Method value */
	const ProtobufCServiceDescriptor *service;     /* generated; static */
	const ProtobufCMethodDescriptor *desc;         /* generated; static */
	char full_name[96]; /* "Health.Check": for logs and metrics labels */
} rk_rpc_method_t;

/* Fills OUT for rpc NAME of SERVICE, whose method-id enum is IDS.
 * RK_NOT_FOUND if SERVICE has no such rpc, RK_FAILED_PRECONDITION if the
 * service or the method has no id (the contract breaks the rule). */
rk_status_t rk_rpc_method_resolve(const ProtobufCServiceDescriptor *service,
                                  const ProtobufCEnumDescriptor *ids,
                                  const char *name, rk_rpc_method_t *out);

/* "ReadRepair" -> "READ_REPAIR" into OUT (size LEN); 0, or -1 if too long. */
int rk_rpc_upper_snake(const char *camel, char *out, size_t len);

#endif

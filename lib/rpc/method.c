/*
 * Method identity; see method.h. Resolution is by name through the enum
 * descriptors that protoc-c generates, done once at registration (server)
 * or once per method handle (client), never per call.
 */
#include "rpc/method.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ringkv/v1/common.pb-c.h"

int rk_rpc_upper_snake(const char *camel, char *out, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; camel[i] != '\0'; i++) {
		unsigned char ch = (unsigned char)camel[i];
		/* A new word starts at an upper-case letter that follows a
		 * lower-case letter or digit: "ReadRepair" -> READ_REPAIR. */
		if (i > 0 && isupper(ch) &&
		    (islower((unsigned char)camel[i - 1]) ||
		     isdigit((unsigned char)camel[i - 1]))) {
			if (o + 1 >= len)
				return -1;
			out[o++] = '_';
		}
		if (o + 1 >= len)
			return -1;
		out[o++] = (char)toupper(ch);
	}
	out[o] = '\0';
	return 0;
}

rk_status_t rk_rpc_method_resolve(const ProtobufCServiceDescriptor *service,
                                  const ProtobufCEnumDescriptor *ids,
                                  const char *name, rk_rpc_method_t *out)
{
	const ProtobufCMethodDescriptor *md =
	    protobuf_c_service_descriptor_get_method_by_name(service, name);
	if (md == NULL)
		return RK_NOT_FOUND;

	char svc_upper[48], meth_upper[48], want[112];
	if (rk_rpc_upper_snake(service->short_name, svc_upper,
	                       sizeof(svc_upper)) != 0 ||
	    rk_rpc_upper_snake(name, meth_upper, sizeof(meth_upper)) != 0)
		return RK_FAILED_PRECONDITION;

	snprintf(want, sizeof(want), "SERVICE_%s", svc_upper);
	const ProtobufCEnumValue *sv = protobuf_c_enum_descriptor_get_value_by_name(
	    &ringkv__v1__service_id__descriptor, want);
	if (sv == NULL || sv->value <= 0)
		return RK_FAILED_PRECONDITION;

	snprintf(want, sizeof(want), "%s_%s", svc_upper, meth_upper);
	const ProtobufCEnumValue *mv =
	    protobuf_c_enum_descriptor_get_value_by_name(ids, want);
	if (mv == NULL || mv->value <= 0)
		return RK_FAILED_PRECONDITION;

	out->service_id = (uint32_t)sv->value;
	out->method_id = (uint32_t)mv->value;
	out->service = service;
	out->desc = md;
	snprintf(out->full_name, sizeof(out->full_name), "%s.%s",
	         service->short_name, name);
	return RK_OK;
}

/*
 * The admin HTTP port; see admin.h.
 *
 * Purpose. Operators and probes (Kubernetes, systemd, Prometheus) ask a
 * service two things over HTTP: does it serve (/healthz) and what are its
 * numbers (/metrics). Both answers are computed in the request callback:
 * the health callback must not block (admin.h) and rendering the registry
 * holds its lock only for the time it takes to print it, so neither needs a
 * worker thread.
 *
 * nng does the HTTP. We register two GET handlers; nng itself answers 404
 * for other paths, 405 for other methods on our paths, and answers HEAD
 * with the GET handler's headers and no body.
 *
 * Lifetime. nng may call a handler on its own threads up to the moment the
 * server is gone, and its handlers are reference counted: a request in
 * flight holds the handler after the server has dropped it. So:
 *
 *   - The rk_admin struct is itself reference counted: one reference for
 *     the caller (dropped by rk_admin_stop) and one for each nng handler
 *     whose data it is (dropped by nng through the handler's destructor,
 *     once no request uses that handler any more). Memory we own is
 *     therefore never freed under a running callback.
 *   - The borrowed objects (metrics, health callback and its argument)
 *     must not be touched after rk_admin_stop returns, since the caller may
 *     free them then. A callback enters them only between admin_enter()
 *     and admin_leave(), which count it in BUSY under MU; rk_admin_stop
 *     sets STOPPING and waits on CV until BUSY is zero. A callback that
 *     comes after that answers 503 without touching them. (nng 1.5.2's
 *     nng_http_server_stop happens to wait for a running handler too, but
 *     it does not promise to, and a request parsed just before the stop
 *     can reach its handler just after.)
 *
 * nng shares one HTTP server among every holder of the same host and port
 * in a process (nng_http_server_hold). A second admin port on an address
 * this process already serves therefore gets nng's server, and fails to
 * add its handlers (they conflict): that is reported as RK_UNAVAILABLE,
 * the same as a port another process holds. With port 0 the sharing would
 * be wrong (two servers each asking for "any port" are not the same
 * server), and nng only stops matching a port-0 server once it has started
 * and learnt its port; START_LOCK makes hold-to-start one step for every
 * admin port of the process, so a second one never sees the first half
 * made.
 */
#include "admin.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "core/log.h"

#define CONTENT_TYPE_TEXT    "text/plain; charset=utf-8"
#define CONTENT_TYPE_METRICS "text/plain; version=0.0.4; charset=utf-8"
/* Longest "HOST:PORT" taken, which covers any IPv6 literal with a zone. */
#define ADDR_MAX 256
/* The reason a health callback may give, including the NUL. */
#define DETAIL_MAX 256

struct rk_admin {
	nng_http_server *server;   /* held; started once start succeeded */
	nng_http_handler *healthz; /* registered with SERVER, or NULL */
	nng_http_handler *metrics; /* registered with SERVER, or NULL */
	int port;                  /* TCP port bound */
	atomic_int refs;    /* the caller's, plus one per handler holding us */
	pthread_mutex_t mu; /* guards BUSY and STOPPING */
	pthread_cond_t cv;  /* signalled when BUSY drops to 0 */
	int busy;           /* callbacks using the borrowed objects */
	bool stopping;      /* set by stop: borrowed ones are off */
	rk_metrics_t *registry;    /* borrowed, rendered by /metrics */
	rk_admin_health_fn health; /* borrowed, called by /healthz */
	void *health_arg;          /* borrowed, passed to HEALTH */
};

static pthread_mutex_t start_lock = PTHREAD_MUTEX_INITIALIZER;

static void admin_unref(void *arg)
{
	rk_admin_t *a = arg;
	if (atomic_fetch_sub(&a->refs, 1) != 1)
		return;
	pthread_cond_destroy(&a->cv);
	pthread_mutex_destroy(&a->mu);
	free(a);
}

/* True when the callback may use the borrowed objects, until
 * admin_leave(); false once stop has begun. */
static bool admin_enter(rk_admin_t *a)
{
	pthread_mutex_lock(&a->mu);
	bool ok = !a->stopping;
	if (ok)
		a->busy++;
	pthread_mutex_unlock(&a->mu);
	return ok;
}

static void admin_leave(rk_admin_t *a)
{
	pthread_mutex_lock(&a->mu);
	if (--a->busy == 0)
		pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->mu);
}

/* Completes the request AIO with a STATUS response carrying BODY (copied)
 * of content type CTYPE. When even that cannot be built, the aio fails and
 * nng closes the connection, which is all there is left to do. */
static void reply(nng_aio *aio, uint16_t status, const char *ctype,
                  const void *body, size_t len)
{
	nng_http_res *res;
	int rv;
	if ((rv = nng_http_res_alloc(&res)) != 0) {
		nng_aio_finish(aio, rv);
		return;
	}
	if ((rv = nng_http_res_set_status(res, status)) != 0 ||
	    (rv = nng_http_res_set_header(res, "Content-Type", ctype)) != 0 ||
	    (rv = nng_http_res_copy_data(res, body, len)) != 0) {
		nng_http_res_free(res);
		nng_aio_finish(aio, rv);
		return;
	}
	nng_aio_set_output(aio, 0, res);
	nng_aio_finish(aio, 0);
}

static void reply_stopping(nng_aio *aio)
{
	static const char body[] = "stopping\n";
	reply(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT, body,
	      sizeof(body) - 1);
}

static rk_admin_t *request_admin(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	return nng_http_handler_get_data(h);
}

static void handle_healthz(nng_aio *aio)
{
	rk_admin_t *a = request_admin(aio);
	if (!admin_enter(a)) {
		reply_stopping(aio);
		return;
	}
	char detail[DETAIL_MAX] = "";
	int serving = 1;
	if (a->health != NULL)
		serving = a->health(a->health_arg, detail, sizeof(detail) - 1);
	admin_leave(a);

	if (serving) {
		reply(aio, NNG_HTTP_STATUS_OK, CONTENT_TYPE_TEXT, "ok\n", 3);
		return;
	}
	/* The callback was given one byte less, so this is a string. */
	detail[sizeof(detail) - 1] = '\0';
	char body[DETAIL_MAX + 16];
	int n = snprintf(body, sizeof(body), "%s\n",
	                 detail[0] != '\0' ? detail : "unavailable");
	reply(aio, NNG_HTTP_STATUS_SERVICE_UNAVAILABLE, CONTENT_TYPE_TEXT, body,
	      (size_t)n);
}

static void handle_metrics(nng_aio *aio)
{
	rk_admin_t *a = request_admin(aio);
	if (!admin_enter(a)) {
		reply_stopping(aio);
		return;
	}
	char *text = NULL;
	size_t len = 0;
	rk_status_t st = RK_OK;
	if (a->registry != NULL)
		st = rk_metrics_render(a->registry, &text, &len);
	admin_leave(a);

	if (st != RK_OK) {
		static const char body[] = "cannot render metrics\n";
		reply(aio, NNG_HTTP_STATUS_INTERNAL_SERVER_ERROR,
		      CONTENT_TYPE_TEXT, body, sizeof(body) - 1);
		return;
	}
	reply(aio, NNG_HTTP_STATUS_OK, CONTENT_TYPE_METRICS,
	      text == NULL ? "" : text, len);
	free(text);
}

/* Allocates a GET handler for PATH whose data is A (holding a reference)
 * and registers it with A's server. On error nothing is left behind. */
static int add_route(rk_admin_t *a, const char *path, void (*cb)(nng_aio *),
                     nng_http_handler **out)
{
	nng_http_handler *h;
	int rv;
	if ((rv = nng_http_handler_alloc(&h, path, cb)) != 0)
		return rv;
	/* GET bodies carry nothing for us; refuse rather than buffer one. */
	if ((rv = nng_http_handler_collect_body(h, true, 0)) != 0 ||
	    (rv = nng_http_handler_set_data(h, a, admin_unref)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	atomic_fetch_add(&a->refs, 1);
	if ((rv = nng_http_server_add_handler(a->server, h)) != 0) {
		nng_http_handler_free(h); /* runs admin_unref */
		return rv;
	}
	*out = h;
	return 0;
}

/* Takes the handlers out of the server and drops our hold on them; nng
 * keeps each alive while a request still uses it. */
static void remove_routes(rk_admin_t *a)
{
	nng_http_handler **hs[] = {&a->healthz, &a->metrics};
	for (size_t i = 0; i < sizeof(hs) / sizeof(hs[0]); i++) {
		if (*hs[i] == NULL)
			continue;
		if (nng_http_server_del_handler(a->server, *hs[i]) == 0)
			nng_http_handler_free(*hs[i]);
		*hs[i] = NULL;
	}
}

/* Checks ADDR is HOST:PORT with a decimal port and writes the nng URL. */
static bool addr_to_url(const char *addr, char *url, size_t len)
{
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || colon[1] == '\0' || strlen(colon + 1) > 5)
		return false;
	long port = 0;
	for (const char *p = colon + 1; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return false;
		port = port * 10 + (*p - '0');
	}
	if (port > 65535)
		return false;
	int n = snprintf(url, len, "http://%s", addr);
	return n > 0 && (size_t)n < len;
}

static rk_status_t status_from_nng(int rv)
{
	switch (rv) {
	case NNG_ENOMEM:
		return RK_RESOURCE_EXHAUSTED;
	case NNG_EINVAL:
	case NNG_EADDRINVAL:
		return RK_INVALID_ARGUMENT;
	default:
		/* Address in use, permission denied, no such interface:
		 * whatever keeps us from listening. */
		return RK_UNAVAILABLE;
	}
}

static int bound_port(nng_http_server *server)
{
	nng_sockaddr sa;
	if (nng_http_server_get_addr(server, &sa) != 0)
		return -1;
	switch (sa.s_family) {
	case NNG_AF_INET:
		return ntohs(sa.s_in.sa_port);
	case NNG_AF_INET6:
		return ntohs(sa.s_in6.sa_port);
	default:
		return -1;
	}
}

rk_status_t rk_admin_start(const char *addr, rk_metrics_t *metrics,
                           rk_admin_health_fn health, void *arg,
                           rk_admin_t **out)
{
	char url_text[ADDR_MAX + sizeof("http://")];
	if (addr == NULL || out == NULL ||
	    !addr_to_url(addr, url_text, sizeof(url_text))) {
		rk_error("admin: bad address '%s', want HOST:PORT",
		         addr == NULL ? "(null)" : addr);
		return RK_INVALID_ARGUMENT;
	}
	nng_url *url;
	int rv = nng_url_parse(&url, url_text);
	if (rv != 0) {
		rk_error("admin: bad address '%s': %s", addr, nng_strerror(rv));
		return RK_INVALID_ARGUMENT;
	}

	rk_admin_t *a = calloc(1, sizeof(*a));
	if (a == NULL) {
		nng_url_free(url);
		return RK_RESOURCE_EXHAUSTED;
	}
	atomic_init(&a->refs, 1);
	a->registry = metrics;
	a->health = health;
	a->health_arg = arg;
	if (pthread_mutex_init(&a->mu, NULL) != 0) {
		free(a);
		nng_url_free(url);
		return RK_RESOURCE_EXHAUSTED;
	}
	if (pthread_cond_init(&a->cv, NULL) != 0) {
		pthread_mutex_destroy(&a->mu);
		free(a);
		nng_url_free(url);
		return RK_RESOURCE_EXHAUSTED;
	}

	const char *step = "create server";
	pthread_mutex_lock(&start_lock);
	if ((rv = nng_http_server_hold(&a->server, url)) != 0) {
		a->server = NULL;
		goto fail;
	}
	step = "register handlers";
	if ((rv = add_route(a, "/healthz", handle_healthz, &a->healthz)) != 0 ||
	    (rv = add_route(a, "/metrics", handle_metrics, &a->metrics)) != 0)
		goto fail;
	step = "listen";
	if ((rv = nng_http_server_start(a->server)) != 0)
		goto fail;
	pthread_mutex_unlock(&start_lock);

	/* nng knows the port it bound; failing that, the one we asked. */
	if ((a->port = bound_port(a->server)) < 0)
		a->port = atoi(url->u_port);
	nng_url_free(url);
	rk_info("admin: serving on %s, port %d", addr, a->port);
	*out = a;
	return RK_OK;

fail:
	if (a->server != NULL) {
		remove_routes(a);
		nng_http_server_release(a->server);
	}
	pthread_mutex_unlock(&start_lock);
	nng_url_free(url);
	rk_error("admin: cannot serve on %s: %s: %s", addr, step,
	         nng_strerror(rv));
	admin_unref(a);
	return status_from_nng(rv);
}

int rk_admin_port(const rk_admin_t *a)
{
	return a->port;
}

void rk_admin_stop(rk_admin_t *a)
{
	if (a == NULL)
		return;
	/* No new connections, and nng aborts the open ones. */
	nng_http_server_stop(a->server);

	/* A callback already running may still be inside the borrowed
	 * objects; the caller frees them once we return. */
	pthread_mutex_lock(&a->mu);
	a->stopping = true;
	while (a->busy > 0)
		pthread_cond_wait(&a->cv, &a->mu);
	pthread_mutex_unlock(&a->mu);

	remove_routes(a);
	nng_http_server_release(a->server);
	admin_unref(a);
}

/* handle.h - the MQTT packet handlers (handle_connect.c, handle_publish.c, handle_ack.c, handle_subscribe.c),
 * called by the connection's read loop (mqtt_conn.c) with one parsed packet, and what they answer it. */
#ifndef AU_MQTT_HANDLE_H
#define AU_MQTT_HANDLE_H

#include "gateway/mqtt/broker.h"

/* What a handler tells the read loop. */
enum mqtt_handled {
    MQTT_HANDLED_CLOSE = -1,  /* close the connection (answered already, or not at all); mc may be gone */
    MQTT_HANDLED_OK = 0,      /* the packet is consumed: go on with the next one */
    MQTT_HANDLED_HANDOFF = 1, /* the connection moved to its owner shard: the CONNECT travels there unconsumed */
    MQTT_HANDLED_PENDING = 2, /* the verdict comes later (a password check): the CONNECT is kept and run again */
};

enum mqtt_handled handle_connect(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);
enum mqtt_handled handle_publish(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);
/* PUBACK, PUBREC, PUBREL, PUBCOMP */
enum mqtt_handled handle_ack(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);
enum mqtt_handled handle_disconnect(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);
enum mqtt_handled handle_subscribe(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);
enum mqtt_handled handle_unsubscribe(struct broker *b, struct mqtt_conn *mc, const struct mqtt_packet *p);

/* Incoming QoS 2 (handle_publish.c): forget a packet id at PUBREL; false when it was unknown. */
bool qos2_release(struct session *s, uint16_t pid);
/* An incoming QoS 2 packet id taken (awaiting PUBREL): recorded in the session (an extension's PUBLISH too). */
void qos2_add(struct session *s, uint16_t pid);

/* An extension's login_authenticate answers BROKER_PENDING (ext.h) for the handler's MQTT_HANDLED_PENDING. */
_Static_assert(BROKER_PENDING == MQTT_HANDLED_PENDING, "BROKER_PENDING is a handler result");

#endif

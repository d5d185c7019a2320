/*
 * link.h — one end of a socket carrying frames (frame.h) between two of elevated's
 * processes: the front <-> engine link. Any thread may send on it (one writes at a time,
 * the others' frames queue behind its write); one reader thread hands each frame
 * received to its owner; it is freed with its last reference.
 */
#ifndef ELEVATED_LINK_H
#define ELEVATED_LINK_H

#include <stdbool.h>

#include "frame.h"

struct link;

/* A frame for the owner (who takes it over); false ends the link. */
typedef bool (*link_frame_fn)(void *cls, struct link *l, struct frame *f);
/* The link has ended (the peer went away, or on_frame said so). */
typedef void (*link_end_fn)(void *cls, struct link *l);

/* Starts the reader of fd (taken over). Returns the link with one reference for the
 * caller, or NULL (fd closed). */
struct link *link_start(int fd, link_frame_fn on_frame, link_end_fn on_end, void *cls);
void link_ref(struct link *l);
void link_unref(struct link *l);
/* Sends a frame, or queues it behind the frames another thread is writing (that thread
 * writes it before it returns): payload is copied or sent before this returns. EL_EIO
 * when the peer is gone (the reader then ends the link); a frame queued when a write
 * fails is lost with the link, whose end tells the owner. */
enum el_err link_send(struct link *l, uint32_t type, uint32_t id, const void *payload,
    size_t len);
/* Ends the link: its reader sees the end and calls on_end. */
void link_close(struct link *l);

#endif

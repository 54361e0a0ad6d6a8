/* placeholder: being written (see train.c.wip) */

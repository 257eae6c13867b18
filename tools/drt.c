/* drt: the distilrt command-line tool. */
#include <stdio.h>
#include "distilrt.h"
int main(int argc, char **argv) { (void)argc; (void)argv; printf("drt %s\n", drt_version()); return 0; }

/* Work in progress: not part of this snapshot. */
#include "support.h"
int main(void)
{
	return 77;
}
